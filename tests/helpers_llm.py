"""Test helpers for the model files and generation backends.

Also a launcher for llama-cpp-python's OpenAI-compatible server with weight
repacking disabled (``python tests/helpers_llm.py --model X.gguf --port N``):
its own ``python -m llama_cpp.server`` has no flag for that, and without it the
server dies with SIGILL on this CPU on the first token.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
SMALL_MODEL = "qwen2.5-0.5b"  # fast enough for tests; the app default is the 1.5B model

CHINESE_PROMPT = [
    {"role": "system", "content": "你是一个简洁的助手，只用中文回答。"},
    {"role": "user", "content": "用一句话介绍合肥市。"},
]


def has_cjk(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- a tiny GGUF writer (independent of assistant.model_files) ------------------------


def _gguf_string(text: str) -> bytes:
    raw = text.encode("utf-8")
    return struct.pack("<Q", len(raw)) + raw


def make_gguf(
    *,
    version: int = 3,
    metadata: dict[str, str] | None = None,
    tensors: list[tuple[str, list[int], int]] | None = None,
    alignment: int = 32,
) -> bytes:
    """A small but well-formed GGUF file: string metadata plus F32 (type 0) / Q8_0 (type 8) tensors.

    ``tensors`` holds (name, dims, ggml type). Tensor data is zeros, laid out
    back to back with the alignment padding GGUF requires.
    """
    metadata = {"general.architecture": "tiny", "general.name": "Tiny Test", **(metadata or {})}
    tensors = tensors if tensors is not None else [("a.weight", [8, 4], 0), ("b.weight", [64], 8)]
    out = bytearray(b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(metadata)))
    for key, value in metadata.items():
        out += _gguf_string(key) + struct.pack("<I", 8) + _gguf_string(value)
    offset, sizes = 0, []
    for name, dims, ttype in tensors:
        elements = 1
        for d in dims:
            elements *= d
        nbytes = elements * 4 if ttype == 0 else elements // 32 * 34
        out += _gguf_string(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", ttype, offset)
        sizes.append(nbytes)
        offset += -(-nbytes // alignment) * alignment
    out += b"\0" * (-len(out) % alignment)
    for nbytes in sizes:
        out += b"\0" * (-(-nbytes // alignment) * alignment)
    return bytes(out)


# --- fake part packages for model assembly tests ------------------------------------------


def make_part_packages(root: Path, module_prefix: str, chunks: list[bytes]) -> None:
    """Create importable packages ``<prefix>1..N`` under ``root``, shaped like the real part packages."""
    for i, data in enumerate(chunks, start=1):
        pkg = root / f"{module_prefix}{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("raise RuntimeError('part packages must not be imported')\n")
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(data)


# --- llama.cpp OpenAI-compatible server -------------------------------------------------------


@contextlib.contextmanager
def llama_server(model: Path, *, ctx: int = 1024, threads: int = 2, timeout_s: float = 90.0) -> Iterator[str]:
    """Run llama-cpp-python's OpenAI server on a free loopback port; yield its base URL; stop it after."""
    port = free_port()
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--model", str(model),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--n_ctx", str(ctx),
        "--n_threads", str(threads),
        "--n_threads_batch", str(threads),
        "--model_alias", "local",
    ]  # fmt: skip
    # A file, not a pipe: a full pipe would block the server's logging and hang the test.
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        base_url = f"http://127.0.0.1:{port}/v1"
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                if proc.poll() is not None:
                    log.seek(0)
                    tail = log.read().decode("utf-8", "replace")[-2000:]
                    raise RuntimeError(f"llama server exited with {proc.returncode}: {tail}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{base_url}/models", timeout=1.0).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"llama server did not start within {timeout_s}s")
                time.sleep(0.3)
            yield base_url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _serve() -> None:
    sys.path.insert(0, str(ROOT))
    import llama_cpp
    from llama_cpp.server.__main__ import main

    from assistant.generation.llama import disable_weight_repacking

    disable_weight_repacking(llama_cpp)
    main()


if __name__ == "__main__":
    _serve()
