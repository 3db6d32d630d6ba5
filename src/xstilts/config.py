"""The experiment config: one TOML file describes the whole study.

Validated with pydantic; unknown keys and bad values are errors that name the key (and the line
of the TOML file where that key is written).
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from xstilts.distributed import native_bf16
from xstilts.errors import ConfigError

#: The intermediate setting with no phase-2 run: its targets start from the pretrained model.
BASELINE = "none"
#: Setting names that stand for several tasks trained together.
MULTI_TASK_ALIASES = {
    "all-nine": ("anli_plus", "mnli", "qqp", "sst2", "squad", "hellaswag", "commonsenseqa", "cosmosqa", "ccg"),
}

#: ``mlm_data`` value: MLM on the non-English sides of the Tatoeba task's files (training/mlm.py).
MLM_TATOEBA = "xtreme:tatoeba"


def setting_name(setting: str | list[str]) -> str:
    """A setting's name: a task name, or a multi-task setting's tasks joined by '+'."""
    return setting if isinstance(setting, str) else "+".join(setting)


def setting_tasks(setting: str | list[str]) -> tuple[str, ...]:
    """The intermediate tasks a setting trains on together (one for single-task settings)."""
    names = [setting] if isinstance(setting, str) else list(setting)
    out: list[str] = []
    for name in names:
        out.extend(MULTI_TASK_ALIASES.get(name, (name,)))
    return tuple(dict.fromkeys(out))


def tracker_installed(name: str) -> bool:
    """Whether the package a ``[runtime] log_with`` tracker needs can be imported (without importing it)."""
    import importlib.util

    return importlib.util.find_spec(name) is not None


class Strict(BaseModel):
    """Unknown keys are errors, and values are not coerced (``batch_size = true`` is not 1, ``seeds =
    ["1"]`` not [1]), nor are infinities and NaN taken: a config says what it means or is refused.
    TOML integers still fill float keys."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


#: The TOML spelling of "not set" (TOML has no null): ``max_train_examples = "none"`` means no cap,
#: ``eval_every = "none"`` once per epoch, ``patience = "none"`` no early stopping. An override
#: uses it to undo a value it would otherwise inherit from ``[target.train]``.
UNSET = "none"
_OPTIONAL_TRAIN_KEYS = ("max_steps", "eval_every", "patience", "max_train_examples", "max_eval_examples")


class TrainConfig(Strict):
    """Hyperparameters of one phase."""

    lr: float = Field(2e-5, gt=0, le=1.0)
    batch_size: int = Field(32, ge=1, le=4096)
    epochs: float = Field(1.0, gt=0, le=1000)
    max_steps: int | None = Field(None, ge=1)  # overrides epochs when set
    max_length: int = Field(128, ge=8, le=4096)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    weight_decay: float = Field(0.01, ge=0, le=1)
    max_grad_norm: float = Field(1.0, gt=0)
    eval_every: int | None = Field(None, ge=1)  # steps; None = once per epoch
    patience: int | None = Field(None, ge=1)  # early stopping, in evaluations
    max_train_examples: int | None = Field(None, ge=1)
    max_eval_examples: int | None = Field(None, ge=1)  # per language
    dropout: float = Field(0.1, ge=0, lt=1)  # encoder hidden + attention dropout and the head's
    # micro-batches of ``batch_size`` per optimizer update (effective batch = batch_size × this)
    grad_accum_steps: int = Field(1, ge=1, le=1024)

    @field_validator(*_OPTIONAL_TRAIN_KEYS, mode="before")
    @classmethod
    def _unset(cls, v: Any) -> Any:
        return None if v == UNSET else v


class RuntimeConfig(Strict):
    """How to run, plus where caches live.

    Most of these change only speed. Those that change results (``bucket_by_length``,
    ``bf16``/``mixed_precision``, ``freeze_embeddings``, ``fast_dropout``, ``first_token_only``,
    ``pack_sequences``) are part of every run id
    (:func:`xstilts.plan.runtime_key`), so changing them starts new runs instead of mixing
    results made both ways.
    """

    # intra-op threads; None = auto: the cores competing processes leave free (niced ones and a VM host's
    # stolen time do not count), at most PyTorch's default, re-checked between evaluation intervals
    # (and at once when runs at once start or end beside it);
    # a reading that would take a thread away is confirmed over a fresh second (training/speed.py).
    # A change of count changes float rounding, which training can grow into a seed-sized difference:
    # fix N for bit-exact repeats (docs/reliability.md, "Determinism")
    threads: int | None = Field(None, ge=1, le=1024)
    # runs trained at once on this machine, each in its own process (executor = "local"; executors/pool.py):
    # on a few CPU cores two runs a core each beat one run on both. Auto threads share the cores among
    # them; like a thread count, it changes float rounding only, so it is not in run ids
    parallel_runs: int = Field(1, ge=1, le=64)
    eval_batch_size: int | None = Field(None, ge=1)  # None = auto: 32 on CPU, 128 on accelerators
    # predict all of a task's evaluation languages in one length-sorted pass (fuller batches);
    # outputs equal per-language passes up to float rounding, like another eval_batch_size: not in run ids
    eval_one_pass: bool = True
    # evaluation batches predicted on this many threads at once, one core each; None = auto: the
    # intra-op thread count on a CPU, 1 on accelerators. Outputs equal up to float rounding: not in run ids
    eval_workers: int | None = Field(None, ge=1, le=1024)
    bucket_by_length: bool = True
    # bf16 autocast (weights and optimizer stay fp32); "auto" = on where the device computes bf16
    # natively (distributed.native_bf16), decided when the config is read, so run ids name what ran
    bf16: bool | Literal["auto"] = False
    mixed_precision: Literal["no", "bf16", "fp16"] | None = None  # None: "bf16" if bf16 else "no"
    compile: bool = False  # torch.compile the encoder (xstilts.training.speed)
    trim_vocab: bool = True  # train only the embedding rows the run's data uses (exact; models/vocab.py)
    freeze_embeddings: bool = False  # keep the word-embedding matrix fixed (changes results: in run ids)
    fused_adamw: bool = True  # AdamW's update as one fused kernel (CPU/CUDA; xstilts.training.speed)
    # the encoder's dropout masks from 16 random bits each (models/dropout.py): another random stream,
    # so it changes results (in run ids)
    fast_dropout: bool = False
    # draw PyTorch's own CPU dropout masks (nn.Dropout's and SDPA's) with a compiled, vectorised
    # Mersenne Twister (models/draws.py): the same numbers, bit for bit, so not in run ids; used only
    # where a check at start shows this CPU's bernoulli_ draws what it draws
    draw_kernel: bool = True
    # fp32 linear layers on a CPU through oneDNN's inner product rather than MKL's GEMM (models/linear.py):
    # equal up to float rounding, like another thread count, so not in run ids. "auto": on an AMD CPU where
    # PyTorch runs AVX-512 kernels (faster there on the Zen 4 measured; MKL was faster on an AVX2-only Zen
    # and on an Intel Xeon with AVX-512)
    onednn_linear: bool | Literal["auto"] = "auto"
    # fp32 linear layers on a CPU through OpenBLAS's sgemm rather than MKL's (models/openblas.py): equal up
    # to float rounding, so not in run ids. "auto": on an AMD CPU where PyTorch's kernels are not AVX-512
    # ones (faster there on the one measured); where both this and onednn_linear are on, this one is used
    openblas_linear: bool | Literal["auto"] = "auto"
    # self-attention's query, key and value projections as one product of the stacked weights
    # (models/fused_qkv.py): fewer operators a step, equal up to float rounding, so not in run ids
    fuse_qkv: bool = False
    # sentence-level heads: the last layer computes the first token only (models/first_token.py);
    # predictions equal up to rounding, but training draws fewer dropout masks (in run ids)
    first_token_only: bool = False
    # the same shortcut in training, drawing every dropout mask the full layer draws and using their first
    # position: the random stream is the full layer's, results equal up to float rounding (like another
    # thread count), so not in run ids; off where pack_sequences is on, superseded by first_token_only
    first_token_train: bool = True
    # the same shortcut in evaluation (no dropout there): predictions equal the full layer's up to
    # float rounding, like another eval_batch_size, so not in run ids
    first_token_eval: bool = True
    # training batches packed end to end into few rows, positions restarting per sequence, attention
    # within each (models/packing.py): (almost) no padding. Dropout masks fall on another layout, so
    # it changes results (in run ids); evaluation stays padded. Gains where a small training set leaves a
    # long tail of lengths in a batch (the quickstart's PAN-X runs: 1.07×), little elsewhere
    pack_sequences: bool = False
    # on a CPU, every layer's linear layers, norms and activations on the batch's real tokens alone,
    # attention in the padded layout (models/unpadding.py): the padded encoder's dropout masks, results
    # equal up to float rounding (like another thread count), so not in run ids. Packed training rows
    # (pack_sequences) have no padding to skip and run as before; evaluation is unpadded there too
    unpad: bool = True
    # ... only for batches with at least this share of their positions padding: below it the gathers
    # around attention cost more than they save (whole runs on the Zen 4 machine: models/unpadding.py).
    # 0 unpads every padded batch. Rounding only, not in run ids
    unpad_min_padding: float = Field(0.05, ge=0.0, lt=1.0)
    # ... and in evaluation (eval mode, no gradients) every batch runs unpadded, attention computed on
    # the real tokens by a compiled kernel (models/attention_kernel.py; 1.9-7x SDPA's speed at evaluation's
    # shapes) where a check at first use passes, else SDPA; equal up to float rounding, so not in run ids.
    # "auto": where PyTorch runs AVX-512 kernels (faster there on the Zen 4 measured; on an AVX2-only VM
    # of the same processor fp32 evaluation passes ran at 0.96x and 1.06x SDPA's with it, two A/Bs: there
    # products are 87 % of a pass and attention 6 %)
    attention_kernel: bool | Literal["auto"] = "auto"
    # ... and in training too, where attention_kernel is on: every batch unpadded, attention's forward and
    # backward by the kernel on real tokens, dropping the probabilities with the mask SDPA would draw (no
    # spreads or gathers around attention, no unpad_min_padding threshold); equal up to float rounding,
    # so not in run ids
    attention_kernel_train: bool = True
    # on a CUDA device, let SDPA pick cuDNN's attention (PyTorch's choice on Hopper GPUs): it builds an
    # execution plan for each new padded shape, ~130 ms each on an H200, and dynamic padding brings a new
    # shape most steps until every length has been seen; off = the flash / memory-efficient kernels,
    # which need no plan (benchmarks/gpu_overhead.py). Equal up to float rounding: not in run ids
    cudnn_attention: bool = False
    cache_dir: str | None = None  # tokenised-data cache; default <output_dir>/../.xstilts-cache
    save_target_checkpoints: bool = False
    # write each target run's predictions in XTREME's submission layout (xstilts.evaluation.submission);
    # output only, so not part of run ids
    write_predictions: bool = False
    progress: bool = True
    # live tracking through Accelerate's trackers (training/tracking.py); observes only: not in run ids
    log_with: list[Literal["tensorboard", "wandb", "mlflow"]] = Field(default_factory=list)

    @field_validator("log_with")
    @classmethod
    def _trackers_installed(cls, v: list[str]) -> list[str]:
        missing = [name for name in dict.fromkeys(v) if not tracker_installed(name)]
        if missing:
            raise ValueError(f"tracker package(s) not installed: {', '.join(missing)} "
                             f"(pip install {' '.join(missing)})")
        return list(dict.fromkeys(v))

    @model_validator(mode="after")
    def _one_precision(self) -> RuntimeConfig:
        if self.bf16 == "auto":
            native = self.mixed_precision in (None, "bf16") and native_bf16()
            object.__setattr__(self, "bf16", native)
        if self.bf16 and self.mixed_precision not in (None, "bf16"):
            raise ValueError(f"bf16 = true contradicts mixed_precision = {self.mixed_precision!r}")
        if self.mixed_precision == "bf16" and not self.bf16:
            object.__setattr__(self, "bf16", True)  # one spelling downstream (eval autocast, run ids)
        return self

    @property
    def precision(self) -> str:
        """Accelerate's mixed_precision value: 'no', 'bf16' or 'fp16'."""
        return self.mixed_precision or ("bf16" if self.bf16 else "no")


def precision_words(precision: str) -> str:
    """How xstilts names a precision to people ("fp32", "bf16 autocast", "fp16 autocast") from
    Accelerate's value ('no', 'bf16', 'fp16'), so `run`, `plan` and the report say the same thing."""
    return "fp32" if precision == "no" else f"{precision} autocast"


class RayConfig(Strict):
    """``executor = "ray"``: where the cluster is, what each run asks for, how failures retry."""

    address: str | None = None  # None = start a local instance; "auto"; "ray://host:10001"
    num_cpus: int | None = Field(None, ge=1)  # CPUs of a local instance (None = all of them)
    cpus_per_run: float = Field(1.0, gt=0)
    gpus_per_run: float = Field(0.0, ge=0)
    memory_gb_per_run: float | None = Field(None, gt=0)  # scheduling hint, not a hard limit
    max_retries: int = Field(2, ge=-1)  # re-runs after a worker or node dies; -1 = forever
    retry_exceptions: bool = False  # also re-run after a Python exception in the run
    shared_dir: str | None = None  # checkpoints: path or fsspec URL; None = <output_dir>/checkpoints
    runtime_env: dict[str, Any] = Field(default_factory=dict)  # passed to ray.init


class IntermediateConfig(Strict):
    """Phase 2: which English intermediate settings to compare ('none' = baseline)."""

    settings: list[str | list[str]] = Field(default_factory=lambda: [BASELINE])
    train: TrainConfig = TrainConfig(lr=2e-5, epochs=1)
    task_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # multi-task settings: how the next batch's task is drawn (training/loop.py sampling_probs)
    sampler: Literal["proportional", "temperature", "uniform"] = "proportional"
    temperature: float = Field(1.0, gt=0, le=1000)  # p ∝ n^(1/T) with sampler = "temperature"
    task_caps: dict[str, Annotated[int, Field(ge=1)]] = Field(default_factory=dict)  # train examples per task
    # masked-LM on unlabelled target-language text, mixed into phase 2 (training/mlm.py)
    mlm_rate: float = Field(0.0, ge=0, le=1)  # fraction of steps that also take an MLM batch
    mlm_weight: float = Field(1.0, gt=0)
    # folder of <lang>.txt (one sentence a line), or "xtreme:tatoeba" (the Tatoeba task's files; its
    # options, e.g. dir, from [intermediate.task_options.tatoeba])
    mlm_data: str | None = None
    mlm_languages: list[str] = Field(default_factory=list)  # [] = every file of mlm_data
    mlm_max_sentences: int | None = Field(None, ge=1)  # per language

    @field_validator("settings")
    @classmethod
    def _non_empty(cls, v: list[str | list[str]]) -> list[str | list[str]]:
        if not v:
            raise ValueError("list at least one setting ('none' is the baseline)")
        if any(isinstance(s, list) and not s for s in v):  # [] would train nothing: the baseline again
            raise ValueError("a multi-task setting lists no task")
        names = [setting_name(s) for s in v]
        if twice := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"setting {twice[0]!r} listed twice")
        return v

    @model_validator(mode="after")
    def _mlm_needs_text(self) -> IntermediateConfig:
        if self.mlm_rate > 0 and not self.mlm_data:
            raise ValueError(f"mlm_rate > 0 needs mlm_data (a folder of <lang>.txt files or {MLM_TATOEBA!r})")
        return self

    def setting_names(self) -> list[str]:
        return [setting_name(s) for s in self.settings]


#: ``[target.train]`` when a config has none.
TARGET_TRAIN_DEFAULTS: dict[str, Any] = {"lr": 2e-5, "epochs": 3}


#: Checkpoint-selection strategies the analysis compares (``[target.selection] strategies``).
SELECTION_STRATEGIES = ("english", "k-shot", "average", "oracle")


class SelectionConfig(Strict):
    """``[target.selection]``: how a target run's checkpoint is chosen, for the analysis to compare.

    ``english`` (English dev, what training keeps) and ``oracle`` (cross-fitted per language) and
    ``k-shot`` (``k_shot`` labelled examples per language) are computed by the analysis from the
    stored per-step rows. ``average`` is the one that changes training: a running uniform average
    of the weights at the evaluated checkpoints (``average = "all"`` or ``"last-k"`` with
    ``average_k``), evaluated at the end of the run. Naming ``average`` in ``strategies`` or setting
    ``average`` switches it on (each implies the other, ``"all"`` when only the strategy is named).
    """

    strategies: list[Literal["english", "k-shot", "average", "oracle"]] = Field(
        default_factory=lambda: ["english", "k-shot", "oracle"], min_length=1)
    average: Literal["all", "last-k"] | None = None
    average_k: int = Field(3, ge=1)
    k_shot: list[Annotated[int, Field(ge=1)]] = Field(default_factory=lambda: [10, 50, 100], min_length=1)

    @model_validator(mode="after")
    def _average_implied(self) -> SelectionConfig:
        strategies = list(dict.fromkeys(self.strategies))
        if self.average is not None and "average" not in strategies:
            strategies.append("average")
        average = self.average or ("all" if "average" in strategies else None)
        object.__setattr__(self, "strategies", strategies)
        object.__setattr__(self, "average", average)
        object.__setattr__(self, "k_shot", sorted(set(self.k_shot)))
        return self


class TargetConfig(Strict):
    """Phase 3: English target training and zero-shot evaluation in each language."""

    tasks: list[str] = Field(min_length=1)
    languages: list[str] | dict[str, list[str]] | None = None  # None = the task's XTREME list
    train: TrainConfig = TrainConfig(**TARGET_TRAIN_DEFAULTS)
    # per-task hyperparameters: the keys an override names win, the others come from ``train``
    overrides: dict[str, TrainConfig] = Field(default_factory=dict)
    task_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    selection: SelectionConfig = SelectionConfig()

    @field_validator("tasks")
    @classmethod
    def _distinct_tasks(cls, v: list[str]) -> list[str]:
        if twice := sorted({t for t in v if v.count(t) > 1}):
            raise ValueError(f"task {twice[0]!r} listed twice")
        return v

    @field_validator("languages")
    @classmethod
    def _distinct_languages(cls, v: list[str] | dict[str, list[str]] | None) -> list[str] | dict[str, list[str]] | None:
        lists = [] if v is None else [v] if isinstance(v, list) else list(v.values())
        for langs in lists:
            if twice := sorted({lang for lang in langs if langs.count(lang) > 1}):
                raise ValueError(f"language {twice[0]!r} listed twice")
        return v

    @model_validator(mode="before")
    @classmethod
    def _merge_overrides(cls, data: Any) -> Any:
        """``[target.overrides.X]`` over ``[target.train]``: only the keys it names change."""
        if not isinstance(data, dict) or not isinstance(data.get("overrides"), dict):
            return data
        base = data.get("train", TARGET_TRAIN_DEFAULTS)
        if isinstance(base, TrainConfig):
            base = base.model_dump()
        if not isinstance(base, dict):
            return data  # not a table: the field's own validation names the problem
        merged = {task: ({**base, **over} if isinstance(over, dict) else over)
                  for task, over in data["overrides"].items()}
        return {**data, "overrides": merged}

    def train_for(self, task: str) -> TrainConfig:
        return self.overrides.get(task, self.train)

    def languages_for(self, task: str, default: tuple[str, ...]) -> list[str]:
        if self.languages is None:
            langs = list(default)
        elif isinstance(self.languages, dict):
            langs = list(self.languages.get(task, default))
        else:
            langs = [lang for lang in self.languages if lang in default] if default else list(self.languages)
        # English first: its dev set drives model selection
        return ["en", *[lang for lang in langs if lang != "en"]]


class ExperimentConfig(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    model: str = "default"
    data_dir: str = "../shared/data"
    output_dir: str | None = None  # default runs/<name>
    seeds: list[Annotated[int, Field(ge=0, lt=2**32)]] = Field(default_factory=lambda: [1], min_length=1)
    intermediate: IntermediateConfig = IntermediateConfig()
    target: TargetConfig
    runtime: RuntimeConfig = RuntimeConfig()
    executor: Literal["local", "ray"] = "local"
    ray: RayConfig = RayConfig()

    @field_validator("executor")
    @classmethod
    def _parallel_runs_are_local(cls, v: str, info: ValidationInfo) -> str:
        runtime = info.data.get("runtime")
        if v != "local" and runtime is not None and runtime.parallel_runs > 1:
            raise ValueError(f"runtime.parallel_runs = {runtime.parallel_runs} is for executor = 'local' "
                             f"(executor = '{v}' sizes runs with [{v}] cpus_per_run)")
        return v

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, v: list[int]) -> list[int]:
        # a field validator, not a model one: the error then names the key 'seeds' and its line
        if len(set(v)) != len(v):
            raise ValueError("seeds must be distinct")
        return v

    def out_dir(self) -> Path:
        return Path(self.output_dir) if self.output_dir else Path("runs") / self.name


def line_of(text: str, loc: tuple[Any, ...]) -> int | None:
    """Best-effort line of the key a validation error is about."""
    keys = [str(k) for k in loc if isinstance(k, str)]
    if not keys:
        return None
    lines = text.splitlines()
    section = ".".join(keys[:-1])
    in_section = not section
    for i, line in enumerate(lines, start=1):
        stripped = line.strip()
        if stripped.startswith("["):
            name = stripped.strip("[]").strip()
            in_section = not section or name == section or section.startswith(name + ".")
            continue
        if in_section and re.match(rf"^\s*{re.escape(keys[-1])}\s*=", line):
            return i
        if in_section and re.match(rf"^\s*{re.escape(keys[-1])}\s*=", line.split("{")[-1]):
            return i
    return None


def parse_set(assignment: str) -> tuple[tuple[str, ...], Any]:
    """``a.b.c=VALUE`` -> (("a", "b", "c"), value); VALUE is read as a TOML value (``1e-4``,
    ``[1, 2]``, ``true``, ``"x"``), and anything that is not one is taken as a plain string."""
    key, sep, text = assignment.partition("=")
    path = tuple(part.strip() for part in key.split("."))
    if not sep or not all(path):
        raise ConfigError(f"--set {assignment!r}: expected KEY=VALUE with a dotted key, e.g. target.train.lr=1e-4")
    try:
        value = tomllib.loads(f"v = {text.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = text.strip()
    return path, value


def apply_sets(raw: dict[str, Any], assignments: Sequence[str]) -> dict[str, Any]:
    """The config's table with each ``--set`` applied (tables on the way are created as needed)."""
    for assignment in assignments:
        path, value = parse_set(assignment)
        table = raw
        for i, part in enumerate(path[:-1]):
            nxt = table.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"--set {assignment!r}: '{'.'.join(path[:i + 1])}' is a value, not a table")
            table = nxt
        table[path[-1]] = value
    return raw


def key_error(message: str, loc: tuple[Any, ...], path: Path, text: str, sets: Sequence[str] = (),
              line: int | None = None) -> ConfigError:
    """The error for a bad value at ``loc``: naming the ``--set`` that gave it where one did (the
    file's line would blame a value the command line replaced), else the file and its line (``line``,
    or the key's)."""
    at = tuple(str(x) for x in loc)
    keys = [(parse_set(a)[0], a) for a in sets]
    named = [a for k, a in keys if at[:len(k)] == k or k[:len(at)] == at]
    if named:
        return ConfigError(f"--set {named[-1]!r}: {message}")
    return ConfigError(message, path, line or line_of(text, loc))


def load_config(path: str | Path, sets: Sequence[str] = ()) -> ExperimentConfig:
    """Read and validate a TOML experiment config; raise ConfigError naming file, line and key.

    ``sets`` are command-line assignments (``target.train.lr=1e-4``) applied over the file before
    validation, so they are checked exactly like the file's own values; an error in one names it.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError("config file not found", path)
    text = path.read_bytes().decode("utf-8-sig", errors="replace")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise ConfigError(f"invalid TOML ({exc})", path, int(m.group(1)) if m else None) from None
    raw = apply_sets(raw, sets)
    try:
        cfg = ExperimentConfig.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        key = ".".join(str(k) for k in loc)
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required key is missing"
        elif err["type"] == "value_error":
            msg = msg.removeprefix("Value error, ")  # pydantic's wrapper of our validators' messages
        raise key_error(f"key '{key}': {msg}", loc, path, text, sets) from None
    _check_task_names(cfg, path, text, sets)
    _check_languages(cfg, path, text, sets)
    _check_task_tables(cfg, path, text, sets)
    return cfg


def _check_task_names(cfg: ExperimentConfig, path: Path, text: str, sets: Sequence[str] = ()) -> None:
    """A misspelt task name is an error at its line of the config (the registry alone knows no file)."""
    from xstilts.tasks import get_task

    settings = zip(cfg.intermediate.settings, cfg.intermediate.setting_names(), strict=True)
    names = [(("intermediate", "settings"), task)
             for setting, name in settings if name != BASELINE for task in setting_tasks(setting)]
    names += [(("target", "tasks"), task) for task in cfg.target.tasks]
    for loc, task in names:
        try:
            get_task(task)
        except ConfigError as exc:
            raise key_error(f"key '{'.'.join(loc)}': {exc.message}", loc, path, text, sets) from None


def _did_you_mean(name: str, known: list[str]) -> str:
    """' (did you mean 'x'?)' for the closest known name, case-insensitive first; '' if none is close."""
    by_lower = {k.lower(): k for k in known}
    if name.lower() in by_lower:
        return f" (did you mean {by_lower[name.lower()]!r}?)"
    close = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _table_line(text: str, loc: tuple[str, ...]) -> int | None:
    """Line of a table ``[a.b.c]`` (or of its key ``c = ...`` inside ``[a.b]``)."""
    header = ".".join(loc)
    for i, line in enumerate(text.splitlines(), start=1):
        stripped = line.split("#")[0].strip()
        if stripped.startswith("[") and stripped.strip("[]").replace(" ", "").replace('"', "") == header:
            return i
    return line_of(text, loc) or line_of(text, loc[:-1])


def _check_languages(cfg: ExperimentConfig, path: Path, text: str, sets: Sequence[str] = ()) -> None:
    """A language no target evaluates on would be dropped without a word: name it instead."""
    from xstilts.tasks import get_task, task_names

    langs = cfg.target.languages
    loc = ("target", "languages")
    if isinstance(langs, dict):  # lists for tasks not (yet) in `tasks` may stay; misspelt names may not
        for task in langs:
            try:
                get_task(task)
            except ConfigError:
                raise key_error(f"key 'target.languages.{task}': unknown task {task!r}"
                                f"{_did_you_mean(task, task_names())}", (*loc, task), path, text, sets,
                                line_of(text, (*loc, task)) or _table_line(text, loc)) from None
        return
    if langs is None:
        return
    tasks = [get_task(t) for t in cfg.target.tasks]
    if any(not t.languages for t in tasks):  # a task without a fixed list takes any language
        return
    known = sorted({lang for t in tasks for lang in t.languages})
    for lang in langs:
        if lang not in known:
            names = ", ".join(cfg.target.tasks)
            raise key_error(f"key 'target.languages': no target evaluates on {lang!r}{_did_you_mean(lang, known)}; "
                            f"languages of {names}: {', '.join(known)}", loc, path, text, sets)


def _check_task_tables(cfg: ExperimentConfig, path: Path, text: str, sets: Sequence[str] = ()) -> None:
    """Tables keyed by task name (overrides, task_options, task_caps) and the options inside them.

    A misspelt task name or option would otherwise be ignored in silence, and the run would use
    the defaults it was meant to change.
    """
    from xstilts.tasks import get_task, task_names

    known = task_names()
    tables: list[tuple[tuple[str, ...], dict[str, Any]]] = [
        (("target", "overrides"), cfg.target.overrides),
        (("target", "task_options"), cfg.target.task_options),
        (("intermediate", "task_options"), cfg.intermediate.task_options),
        (("intermediate", "task_caps"), cfg.intermediate.task_caps),
    ]
    for loc, table in tables:
        for name in table:
            try:
                get_task(name)
            except ConfigError:
                raise key_error(f"key '{'.'.join((*loc, name))}': unknown task {name!r}{_did_you_mean(name, known)}",
                                (*loc, name), path, text, sets, _table_line(text, (*loc, name))) from None
    for name, options in cfg.target.task_options.items():
        _check_options(name, options, ("target", "task_options", name), (), path, text, sets)
    for name, options in cfg.intermediate.task_options.items():
        # translations.py reads these two before the task sees its options
        _check_options(name, options, ("intermediate", "task_options", name), ("translations", "translations_only"),
                       path, text, sets)


def _check_options(name: str, options: dict[str, Any], loc: tuple[str, ...], extra: tuple[str, ...], path: Path,
                   text: str, sets: Sequence[str] = ()) -> None:
    """Every option must be one the task reads (Task.known_options); nested task tables recursively."""
    from xstilts.tasks import get_task

    task = get_task(name)
    known = [*task.known_options(), *extra]
    for key, value in options.items():
        if key not in known:
            raise key_error(f"key '{'.'.join((*loc, key))}': {task.name} has no option {key!r}"
                            f"{_did_you_mean(key, known)}; its options: {', '.join(known) or 'none'}",
                            (*loc, key), path, text, sets, line_of(text, (*loc, key)) or _table_line(text, loc))
        if key in task.nested_options:
            if not isinstance(value, dict):
                raise key_error(f"key '{'.'.join((*loc, key))}': expected a table of {task.nested_options[key]} "
                                "options", (*loc, key), path, text, sets)
            _check_options(task.nested_options[key], value, (*loc, key), (), path, text, sets)


def effective_train_table(cfg: ExperimentConfig):  # -> rich.table.Table
    """The hyperparameters each phase trains with, after overrides and ``--set``: one column per
    phase (intermediate, then each target), a value in bold where a target's override changed it."""
    from rich.table import Table

    phases: list[tuple[str, TrainConfig]] = []
    if any(s != BASELINE for s in cfg.intermediate.setting_names()):
        phases.append(("intermediate", cfg.intermediate.train))
    phases += [(task, cfg.target.train_for(task)) for task in cfg.target.tasks]
    table = Table(title="effective hyperparameters (bold: a target's override)")
    table.add_column("key")
    for name, _ in phases:
        table.add_column(name, justify="right")

    def cell(value: Any) -> str:
        return "-" if value is None else f"{value:g}" if isinstance(value, float) else str(value)

    base = cfg.target.train
    for field in TrainConfig.model_fields:
        cells = []
        for name, hp in phases:
            value = cell(getattr(hp, field))
            overridden = name != "intermediate" and getattr(hp, field) != getattr(base, field)
            cells.append(f"[bold]{value}[/]" if overridden else value)
        table.add_row(field, *cells)
    return table
