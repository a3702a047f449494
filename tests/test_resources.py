"""Resource detection and partition size recommendations (Ray is never started here)."""

from __future__ import annotations

import json
import math
import sys
import types
from pathlib import Path

import psutil
import pyarrow as pa
import pytest

from dj_observe.runner.resources import (
    ClusterResources,
    LocalResources,
    ModalityType,
    PartitionSizeOptimizer,
    ResourceDetector,
    detect_modality,
)

MIB = 1024**2
REASONS = {"sampling", "modality", "partition_size", "max_size_mb", "memory", "worker_count"}


def machine(cores: int = 8, available_gb: float = 16.0) -> LocalResources:
    return LocalResources(
        cpu_cores=cores,
        available_memory_gb=available_gb,
        total_memory_gb=max(available_gb, 32.0),
        gpu_count=0,
        gpu_memory_gb=0.0,
    )


def optimizer(**options: object) -> PartitionSizeOptimizer:
    options.setdefault("local", machine())
    return PartitionSizeOptimizer(detect_cluster=False, **options)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def small_text() -> pa.Table:
    """One million short texts (about 120 MB); 997 distinct rows so sampling does not alias."""
    pool = [f"document {i}: " + "lorem ipsum dolor sit amet " * (1 + i % 7) for i in range(997)]
    return pa.table({"text": pa.array((pool * 1004)[:1_000_000])})


# --- ResourceDetector ------------------------------------------------------------------------


def test_local_resources_are_sane() -> None:
    local = ResourceDetector.detect_local_resources()
    assert 1 <= local.cpu_cores <= (psutil.cpu_count(logical=True) or 1)
    assert local.total_memory_gb > 0
    assert 0 < local.available_memory_gb <= local.total_memory_gb
    assert local.gpu_count >= 0
    assert local.gpu_memory_gb >= 0
    assert (local.gpu_count == 0) == (local.gpu_memory_gb == 0)


def fake_nvidia_smi(directory: Path, body: str) -> None:
    script = directory / "nvidia-smi"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)


def test_gpus_come_from_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_nvidia_smi(tmp_path, "printf '16384\\n8192\\n'")
    monkeypatch.setenv("PATH", str(tmp_path))
    local = ResourceDetector.detect_local_resources()
    assert (local.gpu_count, local.gpu_memory_gb) == (2, 24.0)


@pytest.mark.parametrize("body", ["exit 9", "echo 'No devices were found'", None])
def test_no_gpus_when_nvidia_smi_fails_or_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str | None
) -> None:
    if body is not None:
        fake_nvidia_smi(tmp_path, body)
    monkeypatch.setenv("PATH", str(tmp_path))
    local = ResourceDetector.detect_local_resources()
    assert (local.gpu_count, local.gpu_memory_gb) == (0, 0.0)


def test_no_cluster_when_ray_is_not_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "ray", raising=False)
    assert ResourceDetector.detect_ray_cluster() is None
    assert "ray" not in sys.modules


def test_no_cluster_when_ray_is_not_initialised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", types.SimpleNamespace(is_initialized=lambda: False))
    assert ResourceDetector.detect_ray_cluster() is None


def test_no_cluster_when_ray_cannot_be_queried(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> dict[str, float]:
        raise ConnectionError("gone")

    fake = types.SimpleNamespace(is_initialized=lambda: True, cluster_resources=broken)
    monkeypatch.setitem(sys.modules, "ray", fake)
    assert ResourceDetector.detect_ray_cluster() is None


def test_cluster_resources_from_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.SimpleNamespace(
        is_initialized=lambda: True,
        cluster_resources=lambda: {
            "CPU": 16.0,
            "memory": 32.0 * 1024**3,
            "GPU": 2.0,
            "accelerator_type:A100": 1.0,
            "node:127.0.0.1": 1.0,
        },
        available_resources=lambda: {"CPU": 12.0, "memory": 24.0 * 1024**3},
        nodes=lambda: [{"Alive": True}, {"Alive": True}, {"Alive": False}],
    )
    monkeypatch.setitem(sys.modules, "ray", fake)
    assert ResourceDetector.detect_ray_cluster() == ClusterResources(
        num_nodes=2,
        total_cpu_cores=16,
        total_memory_gb=32.0,
        available_cpu_cores=12,
        available_memory_gb=24.0,
        gpu_resources={"GPU": 2, "accelerator_type:A100": 1},
    )


@pytest.mark.parametrize(
    ("cores", "workers"), [(1, 1), (2, 1), (4, 3), (8, 6), (42, 31), (64, 32), (256, 32)]
)
def test_workers_are_three_quarters_of_cores(cores: int, workers: int) -> None:
    assert ResourceDetector.calculate_optimal_worker_count(machine(cores)) == workers


@pytest.mark.parametrize(
    ("partition_size", "total_samples", "workers"),
    [(100, 250, 3), (100, 10_000, 6), (100, 0, 1), (1000, 1, 1), (None, 10, 6), (100, None, 6)],
)
def test_workers_never_exceed_partitions(
    partition_size: int | None, total_samples: int | None, workers: int
) -> None:
    count = ResourceDetector.calculate_optimal_worker_count(
        machine(8), partition_size=partition_size, total_samples=total_samples
    )
    assert count == workers


def test_workers_follow_the_cluster_when_connected() -> None:
    cluster = ClusterResources(3, 48, 96.0, 40, 80.0, {})
    assert ResourceDetector.calculate_optimal_worker_count(machine(2), cluster) == 30


def test_workers_detect_this_machine_by_default() -> None:
    cores = ResourceDetector.detect_local_resources().cpu_cores
    expected = max(1, min(32, int(cores * 0.75)))
    assert ResourceDetector.calculate_optimal_worker_count() == expected


# --- modality ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sample", "modality"),
    [
        ({"text": "hello"}, ModalityType.TEXT),
        ({}, ModalityType.TEXT),
        ({"text": "x", "images": []}, ModalityType.TEXT),
        ({"text": "x", "images": None, "image": ""}, ModalityType.TEXT),
        ({"text": "x <__dj__image>", "images": ["a.jpg"]}, ModalityType.IMAGE),
        ({"image": "a.jpg"}, ModalityType.IMAGE),
        ({"audios": ["a.wav", "b.wav"]}, ModalityType.AUDIO),
        ({"audio": "a.wav"}, ModalityType.AUDIO),
        ({"videos": ["v.mp4"]}, ModalityType.VIDEO),
        ({"video": "v.mp4"}, ModalityType.VIDEO),
        ({"images": ["a.jpg"], "videos": ["v.mp4"]}, ModalityType.MULTIMODAL),
        ({"text": "t", "image": "a.jpg", "audios": ["a.wav"]}, ModalityType.MULTIMODAL),
    ],
)
def test_detect_modality(sample: dict[str, object], modality: ModalityType) -> None:
    assert detect_modality(sample) is modality


# --- analyze -----------------------------------------------------------------------------------


def test_analyze_rows_samples_evenly_and_adds_media_estimates() -> None:
    rows = [{"text": f"row {i}", "images": ["a.jpg", "b.jpg"]} for i in range(100)]
    found = optimizer(sample_size=10).analyze(rows)

    sampled = rows[::10]
    json_bytes = sum(len(json.dumps(row, ensure_ascii=False).encode()) for row in sampled)
    assert found.total_samples == 100
    assert found.sample_size_analyzed == 10
    assert found.modality is ModalityType.IMAGE
    assert found.modality_distribution["image"] == 10
    assert found.avg_images_per_sample == 2
    assert found.avg_media_bytes_per_sample == 1 * MIB
    assert found.avg_bytes_per_sample == pytest.approx(json_bytes / 10 + MIB)


def test_analyze_table_uses_arrow_sizes() -> None:
    table = pa.table(
        {
            "text": [f"caption {i}" for i in range(50)],
            "videos": [["v.mp4"] if i % 2 else [] for i in range(50)],
            "audio": ["a.wav" if i % 2 else None for i in range(50)],
        }
    )
    found = optimizer(sample_size=5).analyze(table)

    indices = [0, 10, 20, 30, 40]
    assert found.sample_size_analyzed == 5
    assert found.avg_videos_per_sample == 0  # every tenth row is even: no media
    assert found.modality is ModalityType.TEXT
    assert found.avg_bytes_per_sample == table.take(indices).nbytes / 5

    everything = optimizer(sample_size=50).analyze(table)
    assert everything.modality is ModalityType.MULTIMODAL
    assert everything.modality_distribution == {
        "text": 25,
        "image": 0,
        "audio": 0,
        "video": 0,
        "multimodal": 25,
    }
    assert everything.avg_media_bytes_per_sample == pytest.approx(0.5 * (10 + 2) * MIB)


def test_analyze_rejects_other_inputs() -> None:
    with pytest.raises(TypeError, match=r"pyarrow\.Table or a list of dicts"):
        optimizer().analyze("not a dataset")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "options", [{"target_partition_mb": 0}, {"max_size_mb": -1}, {"sample_size": 0}]
)
def test_invalid_options(options: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        PartitionSizeOptimizer(**options)  # type: ignore[arg-type]


# --- recommendations ---------------------------------------------------------------------------


def test_small_text_partitions_are_about_64_mb(small_text: pa.Table) -> None:
    advice = optimizer(local=machine(cores=4)).get_partition_recommendations(small_text)

    rows = advice["recommended_partition_size"]
    assert 60 <= advice["estimated_partition_mb"] <= 64
    assert small_text.slice(0, rows).nbytes / MIB == pytest.approx(64, rel=0.05)
    assert advice["num_partitions"] == math.ceil(1_000_000 / rows) == 2
    assert advice["recommended_max_size_mb"] == 64
    assert advice["recommended_worker_count"] == 2  # 3 by cores, but only 2 partitions
    assert advice["primary_modality"] == "text"
    assert advice["data_characteristics"]["total_samples"] == 1_000_000
    assert advice["data_characteristics"]["modality"] == "text"
    assert advice["resource_analysis"]["max_workers"] == 3
    assert advice["resource_analysis"]["cluster"] is None
    assert set(advice["reasoning"]) == REASONS
    assert all(isinstance(text, str) and text for text in advice["reasoning"].values())
    assert "partition size target" in advice["reasoning"]["partition_size"]
    json.dumps(advice)


def test_max_size_mb_caps_partitions(small_text: pa.Table) -> None:
    advice = optimizer(max_size_mb=16).get_partition_recommendations(small_text)

    assert 15 <= advice["estimated_partition_mb"] <= 16
    assert small_text.slice(0, advice["recommended_partition_size"]).nbytes / MIB <= 16 * 1.05
    assert advice["recommended_max_size_mb"] == 16
    assert advice["num_partitions"] == math.ceil(1_000_000 / advice["recommended_partition_size"])
    assert "max_size_mb" in advice["reasoning"]["partition_size"]


def test_little_memory_shrinks_partitions(small_text: pa.Table) -> None:
    roomy = optimizer(local=machine(8, available_gb=64)).get_partition_recommendations(small_text)
    tight = optimizer(local=machine(8, available_gb=0.06)).get_partition_recommendations(small_text)

    budget_mb = 0.06 * 1024 / (2 * 6)
    assert tight["resource_analysis"]["memory_budget_per_partition_mb"] == pytest.approx(
        budget_mb, abs=1e-3
    )
    assert tight["estimated_partition_mb"] <= budget_mb
    assert tight["recommended_partition_size"] < roomy["recommended_partition_size"]
    assert tight["recommended_max_size_mb"] == math.ceil(budget_mb)
    assert "memory budget" in tight["reasoning"]["partition_size"]
    assert "0.06 GB" in tight["reasoning"]["memory"]


def test_a_sample_larger_than_the_budget_gets_its_own_partition() -> None:
    rows = [{"text": "clip", "videos": ["v.mp4"]} for _ in range(20)]
    advice = optimizer(local=machine(4, available_gb=0.01)).get_partition_recommendations(rows)

    assert advice["primary_modality"] == "video"
    assert advice["recommended_partition_size"] == 1
    assert advice["num_partitions"] == 20
    assert "one sample each" in advice["reasoning"]["memory"]


def test_given_modality_sets_a_floor_per_sample() -> None:
    rows = [{"text": "tiny", "path": f"clip-{i}.mp4"} for i in range(100)]
    detected = optimizer().get_partition_recommendations(rows)
    given = optimizer().get_partition_recommendations(rows, ModalityType.VIDEO)

    assert detected["primary_modality"] == "text"
    assert detected["recommended_partition_size"] == 100
    assert given["primary_modality"] == "video"
    assert given["recommended_partition_size"] == 6  # 64 MB / 10 MB per video
    assert "was given" in given["reasoning"]["modality"]
    assert optimizer().get_partition_recommendations(rows, "video") == given


def test_cluster_resources_drive_workers_and_memory(small_text: pa.Table) -> None:
    cluster = ClusterResources(4, 64, 128.0, 48, 0.5, {})
    advice = optimizer(local=machine(2), cluster=cluster).get_partition_recommendations(small_text)

    assert advice["resource_analysis"]["max_workers"] == 32
    assert advice["resource_analysis"]["cluster"]["available_cpu_cores"] == 48
    assert advice["resource_analysis"]["memory_budget_per_partition_mb"] == 8.0
    assert advice["num_partitions"] > 1
    assert advice["recommended_worker_count"] == min(32, advice["num_partitions"])
    assert "Ray cluster" in advice["reasoning"]["worker_count"]
    assert "Ray cluster" in advice["reasoning"]["memory"]


def test_recommendations_are_deterministic(small_text: pa.Table) -> None:
    first = optimizer().get_partition_recommendations(small_text)
    assert optimizer().get_partition_recommendations(small_text) == first


def test_empty_dataset() -> None:
    advice = optimizer().get_partition_recommendations([])
    assert advice["recommended_partition_size"] == 1
    assert advice["num_partitions"] == 0
    assert advice["recommended_worker_count"] == 1
    assert advice["data_characteristics"]["sample_size_analyzed"] == 0
