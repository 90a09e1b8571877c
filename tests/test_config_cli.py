"""Configuration validation, the CLI surface, and the demo's Ray Data stage on a real Ray."""

from __future__ import annotations

import subprocess
import sys

import pyarrow.compute as pc
import pytest

from cli.config import load_config
from cli.main import build_parser
from localroute.data.build import read_table
from localroute.errors import ConfigError

pytestmark = pytest.mark.timeout(120)


def test_local_config_loads():
    cfg = load_config("configs/local.yaml")
    assert cfg.ray.address is None and cfg.ray.num_cpus == 4
    assert cfg.data.out == "runs/data"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("data:\n  out: 3\n", r"data.out must be str, got int 3"),
        ("data:\n  outt: x\n", r"data: unknown key\(s\) \['outt'\]"),
        ("ray:\n  num_cpus: 0\n", r"ray.num_cpus must be >= 1"),
        ("ray: [1]\n", r"ray must be a mapping"),
        ("data:\n  sources: [gsm8k, nope]\n", r"data.sources: unknown source 'nope'"),
        ("seed: true\n", r"seed must be int"),
        ("a: [\n", r"not valid YAML"),
    ],
)
def test_config_errors_name_the_field(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(path)
    assert str(info.value).startswith(str(path))


def test_missing_config_exits_2_with_one_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "cli.main", "demo", "--config", str(tmp_path / "none.yaml")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'none.yaml'}: config file not found"
    ]


def _subcommands(parser, prefix=()):
    for action in parser._actions:
        if hasattr(action, "choices") and isinstance(action.choices, dict):
            for name, sub in action.choices.items():
                yield (*prefix, name)
                yield from _subcommands(sub, (*prefix, name))


def test_every_subcommand_has_help():
    commands = list(_subcommands(build_parser()))
    assert ("data", "build") in commands and ("demo",) in commands
    for command in commands:
        proc = subprocess.run(
            [sys.executable, "-m", "cli.main", *command, "--help"],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0 and "usage: localroute" in proc.stdout, command


def test_ray_data_model_quality_matches_arrow(ray_cluster, data_build):
    from pipelines.data_overview import model_quality

    rows = model_quality(data_build)
    got = {(r["source"], r["model"]): r for r in rows}
    o = read_table(data_build, "outcomes", ["routellm_gsm8k"])
    for model in set(o["model"].to_pylist()):
        scores = o.filter(pc.equal(o["model"], model))["score"]
        expected = pc.mean(scores).as_py()
        assert got[("routellm_gsm8k", model)]["mean_score"] == pytest.approx(expected)
        assert got[("routellm_gsm8k", model)]["n"] == len(scores)
    assert ("mtbench", "gpt-4") not in got  # answers without scores are not averaged
