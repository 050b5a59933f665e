"""The price catalogue: instance types and GPU models with their prices, read from a data file.

Prices are data (a YAML file users can replace via ``Settings.price_catalogue``), never constants in code, and
every figure carries its source and date so a $ figure shown to an agent can be traced back.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mcp_autoscale.errors import ConfigError

CapacityType = Literal["on-demand", "spot"]

DEFAULT_CATALOGUE = "prices.yaml"


class InstanceType(BaseModel):
    """One purchasable machine shape."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = ""
    cloud: str
    gpu_type: str
    gpus: int = Field(ge=1, le=64)
    on_demand_usd_per_hour: float = Field(gt=0)
    spot_usd_per_hour: float | None = Field(default=None, gt=0)
    source: str = Field(min_length=1)
    as_of: str = Field(min_length=4)


class GpuModel(BaseModel):
    """A GPU model: memory, bandwidth, FLOPS for tier reasoning, and the instance that prices its GPU-hour."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    memory_gb: float = Field(gt=0)
    bandwidth_gbs: float = Field(gt=0)
    bf16_tflops: float | None = Field(default=None, gt=0, description="Dense BF16 TFLOPS (prefill roofline)")
    reference_instance: str
    aliases: list[str] = Field(default_factory=list)


class _CatalogueFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Literal[1]
    currency: Literal["USD"]
    as_of: str
    hours_per_month: float = Field(default=730.0, gt=0, le=744)
    output_token_weight: float = Field(default=3.0, ge=1.0, le=20.0)
    output_token_weight_source: str = ""
    spot_fraction: float = Field(gt=0, le=1)
    spot_source: str = Field(min_length=1)
    gpus: dict[str, GpuModel]
    instances: dict[str, InstanceType]

    @field_validator("as_of", mode="before")
    @classmethod
    def _date_as_text(cls, v: Any) -> Any:
        return str(v) if v is not None else v

    @model_validator(mode="after")
    def _cross_check(self) -> _CatalogueFile:
        for name, gpu in self.gpus.items():
            ref = gpu.reference_instance
            if ref not in self.instances:
                raise ValueError(f"gpus.{name}.reference_instance {ref!r} is not an instance")
            if self.instances[ref].gpu_type != name:
                raise ValueError(f"gpus.{name}.reference_instance {ref!r} has another GPU type")
        for name, inst in self.instances.items():
            if inst.gpu_type not in self.gpus:
                raise ValueError(f"instances.{name}.gpu_type {inst.gpu_type!r} is not listed under gpus")
            if inst.spot_usd_per_hour is not None and inst.spot_usd_per_hour > inst.on_demand_usd_per_hour:
                raise ValueError(f"instances.{name}.spot_usd_per_hour is above on_demand_usd_per_hour")
        return self


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


class PriceCatalogue:
    """Read-only view over a validated catalogue file, with alias-tolerant GPU lookup."""

    def __init__(self, data: _CatalogueFile, source: str) -> None:
        self._data = data
        self.source = source
        self._instances = {n: i.model_copy(update={"name": n}) for n, i in data.instances.items()}
        self._gpu_index: dict[str, str] = {}
        for canonical, gpu in data.gpus.items():
            for alias in (canonical, *gpu.aliases):
                self._gpu_index[_norm(alias)] = canonical
        self._instance_index = {_norm(n): n for n in data.instances}

    @property
    def as_of(self) -> str:
        return self._data.as_of

    @property
    def hours_per_month(self) -> float:
        return self._data.hours_per_month

    @property
    def output_token_weight(self) -> float:
        return self._data.output_token_weight

    @property
    def spot_fraction(self) -> float:
        return self._data.spot_fraction

    @property
    def spot_source(self) -> str:
        return self._data.spot_source

    def gpu_types(self) -> list[str]:
        return list(self._data.gpus)

    def canonical_gpu(self, gpu_type: str) -> str | None:
        """The catalogue's name for a GPU ('NVIDIA-H100-80GB-HBM3' -> 'H100'), or None if unknown."""
        return self._gpu_index.get(_norm(gpu_type))

    def gpu(self, gpu_type: str) -> GpuModel | None:
        canonical = self.canonical_gpu(gpu_type)
        return self._data.gpus[canonical] if canonical else None

    def instance(self, name: str) -> InstanceType | None:
        key = self._instance_index.get(_norm(name))
        return self._instances[key] if key else None

    def instances(self) -> list[InstanceType]:
        return list(self._instances.values())

    def instance_hour(self, name: str, capacity_type: CapacityType = "on-demand") -> float | None:
        """$/h of one instance of ``name`` at the given capacity type."""
        inst = self.instance(name)
        if inst is None:
            return None
        if capacity_type == "spot":
            if inst.spot_usd_per_hour is not None:
                return inst.spot_usd_per_hour
            return inst.on_demand_usd_per_hour * self._data.spot_fraction
        return inst.on_demand_usd_per_hour

    def gpu_hour(self, gpu_type: str, capacity_type: CapacityType = "on-demand") -> float | None:
        """$ per GPU-hour of a GPU model, priced on its reference instance; None if the GPU is unknown."""
        gpu = self.gpu(gpu_type)
        if gpu is None:
            return None
        price = self.instance_hour(gpu.reference_instance, capacity_type)
        inst = self._instances[gpu.reference_instance]
        return None if price is None else price / inst.gpus

    def gpu_hour_for(
        self, gpu_type: str, instance_type: str | None, capacity_type: CapacityType = "on-demand"
    ) -> float | None:
        """$ per GPU-hour, instance-aware: the named instance when known (and of that GPU), else the GPU's."""
        if instance_type:
            inst = self.instance(instance_type)
            if inst is not None and (self.canonical_gpu(gpu_type) in (None, inst.gpu_type)):
                price = self.instance_hour(inst.name, capacity_type)
                return None if price is None else price / inst.gpus
        return self.gpu_hour(gpu_type, capacity_type)


def _line_of(text: str, loc: tuple[int | str, ...]) -> int | None:
    """1-based line of the YAML node at ``loc`` (pydantic error location), best effort."""
    try:
        node: Any = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line: int | None = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = None
            for k, v in node.value:
                if str(k.value) == str(part):
                    nxt = v
                    line = k.start_mark.line + 1
                    break
            if nxt is None:
                break
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def load_catalogue(path: Path | None = None) -> PriceCatalogue:
    """Load and validate a catalogue; the packaged ``prices.yaml`` when ``path`` is None.

    Raises ``ConfigError`` naming the file, line and field on bad data.
    """
    if path is None:
        ref = resources.files("mcp_autoscale").joinpath("data", DEFAULT_CATALOGUE)
        text = ref.read_text(encoding="utf-8")
        label = f"<package>/mcp_autoscale/data/{DEFAULT_CATALOGUE}"
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as err:
            raise ConfigError(f"{path}: cannot read price catalogue: {err.strerror or err}") from err
        label = str(path)
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{label}{where}: not valid YAML: {getattr(err, 'problem', err)}") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"{label}: a price catalogue must be a mapping with 'gpus' and 'instances'")
    try:
        data = _CatalogueFile.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        loc = tuple(first["loc"])
        field = ".".join(str(p) for p in loc) or "<root>"
        line = _line_of(text, loc)
        where = f":{line}" if line else ""
        raise ConfigError(f"{label}{where}: field '{field}': {first['msg']}") from err
    return PriceCatalogue(data, label)
