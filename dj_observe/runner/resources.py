"""Resource-aware partitioning: what the machine or Ray cluster offers, and partition sizes.

:class:`ResourceDetector` reads the local CPU, memory and GPUs (psutil, ``nvidia-smi``) and
the resources of a connected Ray cluster. :class:`PartitionSizeOptimizer` samples a
dataset, detects its modality from sample keys and recommends rows per partition and a
worker count, with the reason for each choice in plain words.

Sizes are in MB of 2**20 bytes; memory is in GB of 2**30 bytes.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any

import psutil
import pyarrow as pa
from loguru import logger

__all__ = [
    "CPU_FRACTION",
    "MAX_WORKERS",
    "MEDIA_ITEM_MB",
    "MEDIA_KEYS",
    "ClusterResources",
    "DataCharacteristics",
    "LocalResources",
    "ModalityType",
    "PartitionSizeOptimizer",
    "ResourceDetector",
    "detect_modality",
]

MIB = 1024**2
GIB = 1024**3
CPU_FRACTION = 0.75
"""Share of the available CPU cores given to workers (the rest is left to the system)."""
MAX_WORKERS = 32


class ModalityType(str, Enum):
    """The kind of data a sample (or a dataset) carries."""

    TEXT = "text"
    IMAGE = "image"
    AUDIO = "audio"
    VIDEO = "video"
    MULTIMODAL = "multimodal"


MEDIA_KEYS: dict[ModalityType, tuple[str, ...]] = {
    ModalityType.IMAGE: ("images", "image"),
    ModalityType.AUDIO: ("audios", "audio"),
    ModalityType.VIDEO: ("videos", "video"),
}
"""Sample keys that hold media paths, per media kind (Data-Juicer's keys and singulars)."""
MEDIA_ITEM_MB: dict[ModalityType, float] = {
    ModalityType.IMAGE: 0.5,
    ModalityType.AUDIO: 2.0,
    ModalityType.VIDEO: 10.0,
}
"""Memory estimated per media item once loaded (Data-Juicer's estimates)."""
_MIN_SAMPLE_MB: dict[ModalityType, float] = {
    ModalityType.TEXT: 0.0,
    **MEDIA_ITEM_MB,
    ModalityType.MULTIMODAL: MEDIA_ITEM_MB[ModalityType.IMAGE] + MEDIA_ITEM_MB[ModalityType.AUDIO],
}
"""Least memory per sample implied by a modality: one item, or the cheapest pair of kinds."""
_MEDIA_COLUMNS = frozenset(key for keys in MEDIA_KEYS.values() for key in keys)
_LIMIT_NAMES = {
    "target": "the partition size target",
    "memory": "the memory budget",
    "max_size_mb": "the configured max_size_mb",
}


@dataclass(frozen=True)
class LocalResources:
    """This machine's resources; ``gpu_memory_gb`` is the total over all GPUs."""

    cpu_cores: int
    available_memory_gb: float
    total_memory_gb: float
    gpu_count: int
    gpu_memory_gb: float


@dataclass(frozen=True)
class ClusterResources:
    """A Ray cluster's resources; ``gpu_resources`` maps GPU resource names to totals."""

    num_nodes: int
    total_cpu_cores: int
    total_memory_gb: float
    available_cpu_cores: int
    available_memory_gb: float
    gpu_resources: dict[str, int]


@dataclass(frozen=True)
class DataCharacteristics:
    """What sampling a dataset found.

    ``avg_bytes_per_sample`` is the sampled rows' serialized size plus the media
    estimates (:data:`MEDIA_ITEM_MB`), of which ``avg_media_bytes_per_sample`` is the part.
    ``modality_distribution`` counts the sampled rows per :func:`detect_modality` result.
    """

    total_samples: int
    sample_size_analyzed: int
    avg_bytes_per_sample: float
    modality: ModalityType
    modality_distribution: dict[str, int]
    avg_media_bytes_per_sample: float
    avg_images_per_sample: float
    avg_audios_per_sample: float
    avg_videos_per_sample: float

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (the modality as its string)."""
        return {**asdict(self), "modality": self.modality.value}


class ResourceDetector:
    """Detects local and Ray cluster resources and derives a worker count."""

    @staticmethod
    def detect_local_resources() -> LocalResources:
        """CPU cores usable by this process, memory (psutil) and GPUs (``nvidia-smi``)."""
        try:
            cpu_cores = len(psutil.Process().cpu_affinity() or ())
        except (AttributeError, psutil.Error, OSError):
            cpu_cores = 0
        cpu_cores = cpu_cores or psutil.cpu_count(logical=True) or 1
        memory = psutil.virtual_memory()
        gpu_count, gpu_memory_gb = _detect_gpus()
        return LocalResources(
            cpu_cores=cpu_cores,
            available_memory_gb=memory.available / GIB,
            total_memory_gb=memory.total / GIB,
            gpu_count=gpu_count,
            gpu_memory_gb=gpu_memory_gb,
        )

    @staticmethod
    def detect_ray_cluster() -> ClusterResources | None:
        """The connected Ray cluster's resources; ``None`` if Ray is not imported or not
        initialised (Ray is never imported or started here) or cannot be queried."""
        ray = sys.modules.get("ray")
        if ray is None:
            return None
        try:
            if not ray.is_initialized():
                return None
            total = ray.cluster_resources()
            available = ray.available_resources()
            nodes = ray.nodes()
        except Exception as exc:
            logger.warning("Could not read the Ray cluster's resources: {}", exc)
            return None
        return ClusterResources(
            num_nodes=sum(1 for node in nodes if node.get("Alive")),
            total_cpu_cores=int(total.get("CPU", 0)),
            total_memory_gb=total.get("memory", 0) / GIB,
            available_cpu_cores=int(available.get("CPU", 0)),
            available_memory_gb=available.get("memory", 0) / GIB,
            gpu_resources={
                name: int(value)
                for name, value in sorted(total.items())
                if name == "GPU" or name.startswith("accelerator_type:")
            },
        )

    @staticmethod
    def calculate_optimal_worker_count(
        local: LocalResources | None = None,
        cluster: ClusterResources | None = None,
        partition_size: int | None = None,
        total_samples: int | None = None,
    ) -> int:
        """Workers to run partitions with.

        75% of the available CPU cores (the cluster's when given, else this machine's,
        detected when ``local`` is None), at least 1, at most :data:`MAX_WORKERS`, and no
        more than the number of partitions when ``partition_size`` and ``total_samples``
        are both known.
        """
        return _worker_plan(local, cluster, partition_size, total_samples)[0]


def detect_modality(sample: Mapping[str, Any]) -> ModalityType:
    """A sample's modality from its media keys (:data:`MEDIA_KEYS`).

    No media: text. One media kind: that kind (text alongside does not change it). Two
    or more kinds: multimodal. A key counts when its value is a non-empty path or list.
    """
    return _modality_of(_media_counts(sample))


class PartitionSizeOptimizer:
    """Recommends rows per partition and a worker count for a dataset.

    The partition size in MB is the smallest of three limits: ``target_partition_mb``,
    ``max_size_mb`` (when set) and the memory budget, available memory / (2 * workers),
    so that every worker can hold its partition and the partition it produces. Rows per
    partition are that size divided by the sampled bytes per sample.

    ``local`` and ``cluster`` replace detection (for tests and callers that already
    know); with ``detect_cluster=False`` no Ray cluster is consulted.
    """

    def __init__(
        self,
        target_partition_mb: float = 64,
        max_size_mb: float | None = None,
        sample_size: int = 1000,
        *,
        local: LocalResources | None = None,
        cluster: ClusterResources | None = None,
        detect_cluster: bool = True,
    ) -> None:
        if target_partition_mb <= 0:
            raise ValueError(f"target_partition_mb must be positive, got {target_partition_mb}")
        if max_size_mb is not None and max_size_mb <= 0:
            raise ValueError(f"max_size_mb must be positive, got {max_size_mb}")
        if sample_size < 1:
            raise ValueError(f"sample_size must be at least 1, got {sample_size}")
        self.target_partition_mb = target_partition_mb
        self.max_size_mb = max_size_mb
        self.sample_size = sample_size
        self.local = local
        self.cluster = cluster
        self.detect_cluster = detect_cluster

    def analyze(self, dataset: pa.Table | Sequence[Mapping[str, Any]]) -> DataCharacteristics:
        """Sample up to ``sample_size`` evenly spaced rows and measure them.

        A pyarrow Table is measured by ``table.take(indices).nbytes``; a list of dicts by
        the UTF-8 size of each sampled row as JSON. Media items add :data:`MEDIA_ITEM_MB`.
        """
        if isinstance(dataset, pa.Table):
            total = dataset.num_rows
            indices = _evenly_spaced(total, self.sample_size)
            sample = dataset.take(pa.array(indices, type=pa.int64()))
            data_bytes = float(sample.nbytes)
            media_columns = [name for name in sample.column_names if name in _MEDIA_COLUMNS]
            rows: Sequence[Mapping[str, Any]] = (
                sample.select(media_columns).to_pylist() if media_columns else [{}] * len(indices)
            )
        elif isinstance(dataset, Sequence) and not isinstance(dataset, str | bytes):
            total = len(dataset)
            indices = _evenly_spaced(total, self.sample_size)
            rows = [dataset[index] for index in indices]
            data_bytes = float(
                sum(len(json.dumps(row, default=str, ensure_ascii=False).encode()) for row in rows)
            )
        else:
            raise TypeError(
                f"expected a pyarrow.Table or a list of dicts, got {type(dataset).__name__}"
            )

        analyzed = len(indices)
        counts = [_media_counts(row) for row in rows]
        distribution = dict.fromkeys((modality.value for modality in ModalityType), 0)
        kinds_seen: dict[ModalityType, int] = dict.fromkeys(MEDIA_KEYS, 0)
        media_bytes = 0.0
        for row_counts in counts:
            distribution[_modality_of(row_counts).value] += 1
            for kind, count in row_counts.items():
                kinds_seen[kind] += count
                media_bytes += count * MEDIA_ITEM_MB[kind] * MIB

        def per_sample(value: float) -> float:
            return value / analyzed if analyzed else 0.0

        return DataCharacteristics(
            total_samples=total,
            sample_size_analyzed=analyzed,
            avg_bytes_per_sample=per_sample(data_bytes + media_bytes),
            modality=_modality_of(kinds_seen),
            modality_distribution=distribution,
            avg_media_bytes_per_sample=per_sample(media_bytes),
            avg_images_per_sample=per_sample(kinds_seen[ModalityType.IMAGE]),
            avg_audios_per_sample=per_sample(kinds_seen[ModalityType.AUDIO]),
            avg_videos_per_sample=per_sample(kinds_seen[ModalityType.VIDEO]),
        )

    def get_partition_recommendations(
        self,
        dataset: pa.Table | Sequence[Mapping[str, Any]],
        modality: ModalityType | str | None = None,
    ) -> dict[str, Any]:
        """Rows per partition, a size cap, a worker count, and why.

        ``modality`` overrides the detected one (say, when media sit under other keys):
        each sample is then assumed to weigh at least one item of that kind (for
        multimodal, an image and an audio clip).
        """
        characteristics = self.analyze(dataset)
        total = characteristics.total_samples
        primary = ModalityType(modality) if modality is not None else characteristics.modality
        local, cluster = self._resources()

        bytes_per_sample = max(
            characteristics.avg_bytes_per_sample, _MIN_SAMPLE_MB[primary] * MIB, 1.0
        )
        max_workers, _ = _worker_plan(local, cluster, None, None)
        if cluster is not None:
            available_gb, memory_source = cluster.available_memory_gb, "in the Ray cluster"
        else:
            available_gb, memory_source = local.available_memory_gb, "on this machine"
        memory_budget_mb = available_gb * 1024 / (2 * max_workers)
        limits = {"target": self.target_partition_mb, "memory": memory_budget_mb}
        if self.max_size_mb is not None:
            limits["max_size_mb"] = self.max_size_mb
        binding = min(limits, key=lambda name: limits[name])
        size_mb = limits[binding]

        rows = max(1, min(int(size_mb * MIB // bytes_per_sample), total))
        num_partitions = math.ceil(total / rows)
        workers, worker_reason = _worker_plan(local, cluster, rows, total)
        estimated_mb = rows * bytes_per_sample / MIB
        sample_mb = bytes_per_sample / MIB

        return {
            "recommended_partition_size": rows,
            "recommended_max_size_mb": max(1, math.ceil(size_mb)),
            "recommended_worker_count": workers,
            "primary_modality": primary.value,
            "estimated_partition_mb": round(estimated_mb, 3),
            "num_partitions": num_partitions,
            "data_characteristics": characteristics.to_dict(),
            "resource_analysis": {
                "local_cpu_cores": local.cpu_cores,
                "local_available_memory_gb": round(local.available_memory_gb, 3),
                "local_total_memory_gb": round(local.total_memory_gb, 3),
                "gpu_count": local.gpu_count,
                "gpu_memory_gb": round(local.gpu_memory_gb, 3),
                "cluster": asdict(cluster) if cluster is not None else None,
                "max_workers": max_workers,
                "memory_budget_per_partition_mb": round(memory_budget_mb, 3),
            },
            "reasoning": {
                "sampling": (
                    f"Measured {characteristics.sample_size_analyzed} evenly spaced rows of "
                    f"{total}: about {_human_bytes(characteristics.avg_bytes_per_sample)} per "
                    f"row, {_human_bytes(characteristics.avg_media_bytes_per_sample)} of it "
                    "estimated for media."
                ),
                "modality": _modality_reason(primary, characteristics, modality is not None),
                "partition_size": (
                    f"{rows} rows of about {_human_bytes(bytes_per_sample)} make a partition "
                    f"of about {estimated_mb:.1f} MB, within the {size_mb:.1f} MB limit set by "
                    f"{_LIMIT_NAMES[binding]}; {total} rows give {num_partitions} partition(s)."
                ),
                "max_size_mb": (
                    f"Partitions are capped at {size_mb:.1f} MB, the smallest of: "
                    + ", ".join(
                        f"{_LIMIT_NAMES[name]} ({value:.1f} MB)" for name, value in limits.items()
                    )
                    + "."
                ),
                "memory": (
                    f"{available_gb:.2f} GB of memory is available {memory_source}; divided by "
                    f"2 x {max_workers} worker(s) (each holds an input and an output "
                    f"partition) that allows {memory_budget_mb:.1f} MB per partition"
                    + (
                        f", less than one sample ({sample_mb:.1f} MB), so partitions hold one "
                        "sample each."
                        if sample_mb > memory_budget_mb
                        else "."
                    )
                ),
                "worker_count": worker_reason,
            },
        }

    def _resources(self) -> tuple[LocalResources, ClusterResources | None]:
        local = self.local or ResourceDetector.detect_local_resources()
        cluster = self.cluster
        if cluster is None and self.detect_cluster:
            cluster = ResourceDetector.detect_ray_cluster()
        return local, cluster


def _detect_gpus() -> tuple[int, float]:
    """GPU count and total memory in GB from ``nvidia-smi``; ``(0, 0.0)`` without it."""
    binary = shutil.which("nvidia-smi")
    if binary is None:
        return 0, 0.0
    try:
        result = subprocess.run(
            [binary, "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        memory_mib = [float(line) for line in result.stdout.splitlines() if line.strip()]
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        logger.debug("nvidia-smi gave no GPU list: {}", exc)
        return 0, 0.0
    return len(memory_mib), sum(memory_mib) / 1024


def _worker_plan(
    local: LocalResources | None,
    cluster: ClusterResources | None,
    partition_size: int | None,
    total_samples: int | None,
) -> tuple[int, str]:
    """The worker count of :meth:`ResourceDetector.calculate_optimal_worker_count` and why."""
    if cluster is not None:
        cores, where = cluster.available_cpu_cores, "available in the Ray cluster"
    else:
        local = local or ResourceDetector.detect_local_resources()
        cores, where = local.cpu_cores, "on this machine"
    workers = max(1, int(cores * CPU_FRACTION))
    reason = f"{CPU_FRACTION:.0%} of the {cores} CPU core(s) {where} gives {workers} worker(s)"
    if workers > MAX_WORKERS:
        workers = MAX_WORKERS
        reason += f", capped at {MAX_WORKERS}"
    if partition_size and partition_size > 0 and total_samples is not None:
        partitions = math.ceil(total_samples / partition_size)
        if partitions < workers:
            workers = max(1, partitions)
            reason += f"; there are only {partitions} partition(s), so {workers} worker(s)"
    return workers, reason + "."


def _media_counts(sample: Mapping[str, Any]) -> dict[ModalityType, int]:
    """Media items per kind in a sample."""
    return {
        kind: sum(_item_count(sample.get(key)) for key in keys) for kind, keys in MEDIA_KEYS.items()
    }


def _item_count(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, str | bytes | Mapping):
        return 1 if value else 0
    if isinstance(value, Sequence):
        return len(value)
    return 1


def _modality_of(counts: Mapping[ModalityType, int]) -> ModalityType:
    kinds = [kind for kind, count in counts.items() if count]
    if len(kinds) > 1:
        return ModalityType.MULTIMODAL
    return kinds[0] if kinds else ModalityType.TEXT


def _modality_reason(
    primary: ModalityType, characteristics: DataCharacteristics, overridden: bool
) -> str:
    rows = ", ".join(
        f"{count} {name}" for name, count in characteristics.modality_distribution.items() if count
    )
    found = f"sampled rows by modality: {rows}" if rows else "no rows were sampled"
    if overridden:
        floor = _MIN_SAMPLE_MB[primary] * MIB
        weight = f"; each sample is taken to weigh at least {_human_bytes(floor)}" if floor else ""
        return f"Modality {primary.value} was given ({found}){weight}."
    if primary is ModalityType.TEXT:
        return f"Text: no media keys ({', '.join(sorted(_MEDIA_COLUMNS))}) hold values ({found})."
    return (
        f"Detected {primary.value} from the media keys ({found}); media are estimated at "
        + ", ".join(f"{mb:g} MB per {kind.value}" for kind, mb in MEDIA_ITEM_MB.items())
        + "."
    )


def _evenly_spaced(total: int, count: int) -> list[int]:
    """``min(count, total)`` row indices spread evenly over ``range(total)``."""
    count = min(count, total)
    return [index * total // count for index in range(count)]


def _human_bytes(size: float) -> str:
    for unit, factor in (("GB", GIB), ("MB", MIB), ("KB", 1024)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}"
    return f"{size:.0f} bytes"
