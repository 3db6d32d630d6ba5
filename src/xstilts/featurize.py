"""Read a task split and tokenise it once; cache the result on disk.

The cache key covers everything the features depend on: task, its options, split, language,
example cap (a number of examples, e.g. sentences, however many features each becomes), max
length, the head's resolved encoding settings (e.g. tagging windows), the tokenizer (its
serialized vocabulary) and the bytes of the data files. Writes are atomic (temp file + rename),
so an interrupted run never leaves a bad entry.

An entry also keeps the digest of every file the reader opened, which can be more than
``Task.files`` names (XNLI's dev-split reads English to split another language): an entry whose
files changed is rebuilt, and a hit reports those files to :mod:`xstilts.identity` as read.
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path
from typing import Any

from xstilts.faults import atomic_path
from xstilts.heads import Feature, get_head_kind
from xstilts.identity import digests, file_digest, note_read, recording, unchanged
from xstilts.tasks.base import Example, Task

# 2: SpanQAExample.answer_language; 3: tagging windows (several features per long sentence);
# 4: entries are (examples, features, {file read: digest})
CACHE_VERSION = 4


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """Hash of the tokenizer's full serialisation (vocabulary, normaliser, specials)."""
    cached = getattr(tokenizer, "_xstilts_fingerprint", None)
    if cached:
        return cached
    backend = getattr(tokenizer, "backend_tokenizer", None)
    blob = backend.to_str() if backend is not None else repr(sorted(tokenizer.get_vocab().items()))
    digest = hashlib.sha256(blob.encode()).hexdigest()[:16]
    try:
        tokenizer._xstilts_fingerprint = digest
    except AttributeError:
        pass
    return digest


def cache_key(task: Task, split: str, language: str, tokenizer: Any, max_length: int, limit: int | None) -> str:
    files = [(str(p.name), file_digest(p)) for p in task.files(split, language) if p.is_file()]
    settings = get_head_kind(task.head).encode_settings(task, tokenizer, max_length)  # e.g. tagging windows
    parts = (CACHE_VERSION, task.name, sorted(task.options.items(), key=str), split, language, limit,
             max_length, settings, tokenizer_fingerprint(tokenizer), files)
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:24]


def load_features(task: Task, split: str, language: str, tokenizer: Any, max_length: int,
                  limit: int | None = None, cache_dir: Path | None = None,
                  ) -> tuple[list[Example], list[Feature]]:
    """Examples and their features for one split of one language (cached when ``cache_dir``)."""
    path = None
    if cache_dir is not None:
        key = cache_key(task, split, language, tokenizer, max_length, limit)
        path = cache_dir / f"{task.name}-{split}-{language}-{key}.pkl"
        if path.is_file():
            try:
                with open(path, "rb") as fh:
                    examples, features, read = pickle.load(fh)
            except (pickle.UnpicklingError, EOFError, OSError, ValueError, TypeError):
                path.unlink(missing_ok=True)  # corrupt entry: rebuild it
            else:
                if unchanged(read):  # else a file the key does not cover changed: rebuild
                    for file in read:
                        note_read(file)
                    return examples, features
    with recording() as read:
        examples = task.load(split, language, limit)
    features = get_head_kind(task.head).encode(task, examples, tokenizer, max_length)
    if path is not None:
        # no fsync: an entry a power cut truncates fails to unpickle above and is rebuilt
        with atomic_path(path, fault="cache_write", fsync=False) as tmp, open(tmp, "wb") as fh:
            pickle.dump((examples, features, digests(read)), fh, protocol=pickle.HIGHEST_PROTOCOL)
    return examples, features
