"""Serving the app: the queue, the offline theme and CSS, port checks, and ``policy-qa serve``.

Fully offline: analytics off, no share link, a theme with local system fonts
only (the default theme would fetch Google Fonts), no CDN assets.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from assistant.config import Settings
from assistant.errors import ConfigError
from ui.app import build_app

if TYPE_CHECKING:
    from assistant.answering.pipeline import Assistant

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
# Requests waiting in Gradio's queue, all clients together; more are turned away with "queue full".
# Gradio has no per-client queue setting: ``ui.limits.SessionLimit`` caps each session's requests.
MAX_QUEUE = 64
MAX_FILE_SIZE = "1kb"  # the app takes no files: Gradio's upload route refuses anything bigger (413)
THEME_FONTS = ["Noto Sans CJK SC", "PingFang SC", "Microsoft YaHei", "Source Han Sans SC", "sans-serif"]
MONO_FONTS = ["Noto Sans Mono CJK SC", "DejaVu Sans Mono", "monospace"]


def _theme() -> gr.themes.Base:
    return gr.themes.Soft(
        primary_hue=gr.themes.colors.blue,
        secondary_hue=gr.themes.colors.sky,
        neutral_hue=gr.themes.colors.slate,
        font=THEME_FONTS,
        font_mono=MONO_FONTS,
        text_size=gr.themes.sizes.text_lg,
    )


def _css() -> str:
    path = HERE / "style.css"
    try:
        return path.read_text(encoding="utf-8")
    except OSError:  # pragma: no cover - only when the package was installed without its data files
        log.warning("ui/style.css is missing; the page will use Gradio's default look")
        return ""


def launch(
    app: gr.Blocks,
    settings: Settings,
    *,
    prevent_thread_lock: bool = False,
    quiet: bool = False,
    max_queue: int = MAX_QUEUE,
) -> tuple[Any, str, str]:
    """Start the server on settings.host:port with queuing, offline theme and CSS, and the upload limit."""
    app.queue(default_concurrency_limit=1, max_size=max_queue)
    try:
        return app.launch(
            server_name=settings.host,
            server_port=settings.port,
            share=False,
            prevent_thread_lock=prevent_thread_lock,
            quiet=quiet,
            show_error=False,
            ssr_mode=False,
            mcp_server=False,
            pwa=False,
            footer_links=["api"],
            max_file_size=MAX_FILE_SIZE,
            theme=_theme(),
            css=_css(),
        )
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {settings.host}:{settings.port} ({exc}); is another server using the port? "
            "Choose another with --port."
        ) from exc


def check_port_free(host: str, port: int) -> None:
    """Raise ConfigError if host:port cannot be bound (in use, or not an address of this machine)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigError(f"setting 'host' = {host!r} is not a valid address ({exc})") from exc
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(addr)
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {host}:{port} ({exc.strerror or exc}); is another server using the port? "
                "Choose another with --port."
            ) from exc


def serve(
    settings: Settings,
    assistant: Assistant | None = None,
    progress: Callable[[str], None] = print,
) -> None:
    """``policy-qa serve``: warm everything up once (with progress), then serve until interrupted."""
    # Fail before the (possibly long) warm-up if the port is taken.
    check_port_free(settings.host, settings.port)
    if assistant is None:
        from assistant.answering.pipeline import Assistant

        assistant = Assistant(settings, progress=progress)
    started = time.perf_counter()
    assistant.warm_up()
    progress(f"准备完成，用时 {time.perf_counter() - started:.1f} 秒。")
    start_warmup = getattr(getattr(assistant, "resources", None), "start_prefix_warmup", None)
    if callable(start_warmup):
        start_warmup()  # background: prefix states for every plan unit, while nobody is waiting
    app = build_app(assistant, settings)
    progress(f"在浏览器中打开 http://{settings.host}:{settings.port} （Ctrl+C 退出）")
    launch(app, settings, quiet=True)
