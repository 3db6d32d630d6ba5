"""``xstilts export``: a finished run as a standard Hugging Face model directory.

A phase-3 run (kept with ``[runtime] save_target_checkpoints = true``) becomes its encoder plus
trained head as the matching ``AutoModelFor…`` class, label names in ``config.id2label``; a
phase-2 run becomes its encoder as an ``AutoModel``. Either way: ``config.json``,
``model.safetensors``, the tokenizer files and a model card (``README.md``). The directory is
written beside its destination and renamed into place, so it is complete or absent.
``config.json`` also keeps what ``xstilts predict`` needs to encode text exactly as the run did
(key ``xstilts``: task, head kind, task options, max length).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from xstilts.errors import XstiltsError
from xstilts.export.source import StoredRun, stored_run

EXPORT_KEY = "xstilts"  # config.json key of what xstilts predict needs


@dataclass(frozen=True)
class Exported:
    path: Path
    model_class: str
    max_difference: float | None  # probe outputs, exported model vs xstilts head (None: encoder only)


def export_run(expdir: Path, run_id: str, out: Path) -> Exported:
    """Export run ``run_id`` of the experiment in ``expdir`` to the new directory ``out``."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise XstiltsError("export destination exists and is not an empty directory; remove it or choose another",
                           out)
    run = stored_run(expdir, run_id)
    out.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{out.name}.export-"
    for leftover in out.parent.glob(f"{prefix}*"):  # what a killed export to this destination left behind
        shutil.rmtree(leftover, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=out.parent))
    try:
        exported = _write(run, tmp)
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return Exported(out, exported[0], exported[1])


def _write(run: StoredRun, directory: Path) -> tuple[str, float | None]:
    import torch
    from safetensors.torch import load_file
    from transformers import AutoConfig

    from xstilts.checkpoint import ENCODER_FILE, load_encoder_weights, load_head
    from xstilts.export.card import model_card
    from xstilts.export.hf import LABELLED, build_model, check_same_outputs
    from xstilts.heads import get_head_kind
    from xstilts.models.loading import load_encoder, load_tokenizer, resolve_model_path
    from xstilts.tasks import get_task

    model_path = resolve_model_path(run.config.model)
    tokenizer = load_tokenizer(model_path)
    config = AutoConfig.from_pretrained(model_path)
    encoder_state = load_file(str(run.checkpoint / ENCODER_FILE))
    kind, diff = None, None
    if run.is_target:
        head_state, info = load_head(run.checkpoint)
        kind, labels = info["kind"], list(info["labels"])
        if kind in LABELLED:
            config.num_labels = len(labels)
            config.id2label = dict(enumerate(labels))
            config.label2id = {label: i for i, label in enumerate(labels)}
        setattr(config, EXPORT_KEY, {"task": info["task"], "kind": kind, "task_options": info["task_options"],
                                     "max_length": info["max_length"], "run_id": run.run_id})
        model = build_model(config, kind, encoder_state, head_state)
        # the same model as xstilts runs it, to check the export against
        task = get_task(info["task"], info["task_options"])
        encoder = load_encoder(model_path)
        load_encoder_weights(encoder, run.checkpoint)
        head = get_head_kind(kind).build(task, encoder.config.hidden_size, 0.0)
        head.load_state_dict(head_state)
        diff = check_same_outputs(model, kind, task, labels, encoder, head, tokenizer, info["max_length"])
        del encoder
    else:
        model = build_model(config, None, encoder_state)
    with torch.no_grad():
        model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    (directory / "README.md").write_text(model_card(run, kind), encoding="utf-8")
    return type(model).__name__, diff


def push_to_hub(directory: Path, repo: str) -> str:
    """Upload an export to the Hub repository ``repo`` (created if needed); its URL."""
    from huggingface_hub import HfApi

    try:
        api = HfApi()
        api.create_repo(repo, exist_ok=True)
        return str(api.upload_folder(folder_path=str(directory), repo_id=repo, commit_message="xstilts export"))
    except Exception as exc:  # offline, no token, no permission: the export itself is kept
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise XstiltsError(f"could not push to the Hub repository {repo!r} ({type(exc).__name__}: {detail}); "
                           f"the export is complete in {directory}") from None


__all__ = ["Exported", "export_run", "push_to_hub"]
