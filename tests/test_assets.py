"""``dj-observe assets export`` and bundled configs by name, in process (from the checkout).

tests/test_wheel.py does the same from an installed wheel.
"""

from __future__ import annotations

from pathlib import Path

from support import run_cli

from dj_observe.assets import asset_files, config_path

ROOT = Path(__file__).resolve().parents[1]


def _one_error_line(err: str) -> str:
    assert err.count("\n") == 1 and err.startswith("dj-observe: error: "), err
    return err


def test_export_writes_the_repository_layout(tmp_path):
    code, out, err = run_cli("assets", "export", str(tmp_path / "stack"))
    assert code == 0, err
    names = asset_files(ROOT)
    assert asset_files(tmp_path / "stack") == names
    assert out.splitlines()[1:] == [f"  {tmp_path / 'stack' / name}" for name in names]
    assert {"docker-compose.yml", "prometheus/prometheus.yml", "configs/demo.yaml"} <= set(names)


def test_export_onto_a_file_is_one_line(tmp_path):
    (tmp_path / "taken").write_text("")
    code, _, err = run_cli("assets", "export", str(tmp_path / "taken"))
    assert code == 2
    assert "is not a directory" in _one_error_line(err)


def test_export_writes_nothing_when_one_file_exists(tmp_path):
    (tmp_path / "grafana").mkdir()
    (tmp_path / "grafana" / "notes.txt").write_text("mine")
    (tmp_path / "docker-compose.yml").write_text("mine")
    code, _, err = run_cli("assets", "export", str(tmp_path))
    assert code == 2
    assert "docker-compose.yml exists; --force overwrites" in _one_error_line(err)
    assert sorted(p.name for p in tmp_path.rglob("*")) == [
        "docker-compose.yml",
        "grafana",
        "notes.txt",
    ]


def test_a_bundled_config_is_found_by_name_and_a_path_stays_a_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert Path(config_path("demo")).read_bytes() == (ROOT / "configs" / "demo.yaml").read_bytes()
    assert config_path("configs/demo.yaml") == "configs/demo.yaml"
    (tmp_path / "demo").write_text("mine")
    assert config_path("demo") == "demo"  # a file of that name wins


def test_run_of_an_unknown_name_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli("run", "nosuch")
    assert code == 2
    assert "nosuch" in _one_error_line(err)
