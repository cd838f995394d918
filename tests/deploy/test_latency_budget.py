"""``compress prune --target-latency``: the budget measured where the model runs (this CPU, and the
test's real sshd), every probe reported, the final model re-measured."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from compress.cli import cli
from compress.config import build
from compress.errors import CompressError
from compress.prune.budget import LatencyBudget, measure, parse_latency, parse_share


@pytest.fixture(scope="module")
def wide_digits(tmp_path_factory):
    from compress.train import TrainConfig, train

    out = tmp_path_factory.mktemp("wide") / "m"
    cfg = {"model": "resnet8x4", "data": {"name": "digits", "batch_size": 64}, "epochs": 1,
           "progress": False, "device": "cpu", "output": str(out)}  # fmt: skip
    train(build(TrainConfig, cfg), log=lambda _m: None)
    return out / "model.safetensors"


def test_parse_latency():
    assert parse_latency("2ms") == 2.0 and parse_latency("500us") == 0.5
    assert parse_latency("0.004s") == 4.0 and parse_latency(3) == 3.0
    assert parse_share("60%") == 0.6 and parse_share("2ms") is None and parse_share(2) is None
    for bad in ("150%", "0%", "x%"):
        with pytest.raises(CompressError):
            parse_share(bad)
    with pytest.raises(CompressError, match="such as 2ms"):
        parse_latency("fast")


def _budgeted(tmp_path, model, budget_ms, extra=()):
    out = tmp_path / "p"
    budget = budget_ms if isinstance(budget_ms, str) else f"{budget_ms}ms"
    args = ["prune", str(model), "--target-latency", budget, "--latency-batch", "32",
            "--set", "budget.iters=20", "--set", "budget.duration=0.2", "--no-latency",
            "-o", str(out), *extra]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return json.loads((out / "summary.json").read_text()), result.output


def test_prune_to_a_latency_budget_on_this_cpu(tmp_path, wide_digits):
    import compress

    base = measure(
        compress.load_model(wide_digits),
        LatencyBudget(batch=32, iters=20, duration=0.2),
        None,
        print,
    )
    budget = 0.6 * base["p50_ms"]
    summary, output = _budgeted(tmp_path, wide_digits, round(budget, 4))
    lb = summary["latency_budget"]
    probes = lb["probes"]
    assert probes[0]["ratio"] == 0.0 and len(probes) >= 4 and "probe ratio" in output
    assert summary["params_after"] < summary["params_before"]
    # the final model, re-measured by the command, meets the budget within the noise it reports
    assert lb["met"] and lb["achieved_p50_ms"] <= lb["target_ms"] + lb["noise_ms"]
    # the chosen ratio passed twice: once in the search, once confirmed
    runs = [p for p in probes if p["ratio"] == summary["ratio"]]
    assert [p["confirm"] for p in runs] == [False, True] and "confirm ratio" in output
    assert all(p["p50_ms"] <= lb["target_ms"] for p in runs)
    # no smaller ratio passed its confirmation
    confirmed = [p for p in probes if p["confirm"] and p["p50_ms"] <= lb["target_ms"]]
    assert min(p["ratio"] for p in confirmed) == summary["ratio"]


@pytest.mark.slow  # 40 s; the local budget test and the SSH profile test cover its parts
def test_prune_to_a_share_of_the_latency_over_ssh(tmp_path, wide_digits, sshd):
    """``--target-latency 60%`` on the test sshd: the budget is 60 % of the unpruned model's p50
    measured there, first, in the same run."""
    extra = ["--target", sshd["url"], "--set", f"budget.ssh_config={sshd['config']}",
             "--set", f"budget.remote_python={sshd['python_no_torch']}"]  # fmt: skip
    summary, output = _budgeted(tmp_path, wide_digits, "60%", extra)
    lb = summary["latency_budget"]
    assert lb["target"] == sshd["url"] and lb["share"] == 0.6
    unpruned = [p["p50_ms"] for p in lb["probes"] if p["ratio"] == 0.0]
    assert len(unpruned) == 2  # measured twice, the faster kept
    assert lb["target_ms"] == pytest.approx(0.6 * min(unpruned))
    assert "budget: 60% of the unpruned p50" in output
    assert f"on {sshd['url']}" in output and summary["params_after"] < summary["params_before"]


def test_an_unreachable_budget_is_one_line(tmp_path, wide_digits):
    result = CliRunner().invoke(
        cli,
        ["prune", str(wide_digits), "--target-latency", "0.0001ms", "--set", "budget.iters=5",
         "--set", "budget.duration=0", "--no-latency", "-o", str(tmp_path / "x")],
    )  # fmt: skip
    assert result.exit_code == 2 and "over the 0.0001 ms budget" in result.output


class _ScriptedDevice:
    """A device whose latency is the pruned model's parameter count in ms per million, except
    that every measurement after the first of a model in `slow` is 10× slower: the search's
    logic on numbers it cannot argue with (the real measurements are tested above)."""

    def __init__(self, slow=()):
        self.slow, self.seen = set(slow), {}

    def __call__(self, model, budget, data_dir, log):
        from compress.models import count_params

        n = count_params(model)
        self.seen[n] = self.seen.get(n, 0) + 1
        ms = n / 1e6 * (10 if self.seen[n] > 1 and n in self.slow else 1)
        return {"p50_ms": ms, "p90_ms": ms, "runs": 1}


def _search(monkeypatch, device, budget_ms):
    import compress
    import compress.prune.budget as budget_module
    from compress.prune.budget import search_latency_ratio
    from compress.prune.settings import PruneSettings

    monkeypatch.setattr(budget_module, "measure", device)
    model = compress.create_model("resnet8x4", num_classes=10, in_channels=1)
    return search_latency_ratio(
        model, (1, 8, 8), PruneSettings(), budget_ms=budget_ms, budget=LatencyBudget(),
        log=lambda _m: None,
    )  # fmt: skip


def _params(probes, ratio):
    return next(p["params"] for p in probes if p["ratio"] == ratio)


def test_a_refuted_winner_costs_one_architecture_step(monkeypatch):
    """The model a steady device would choose is slow when measured again: it is refuted, the
    search probes between it and the next passing ratio, and a confirmed model one step further
    wins — not the most pruned end."""
    ratio0, probes0, _ = _search(monkeypatch, _ScriptedDevice(), 0.6)
    winner = _params(probes0, ratio0)
    ratio, probes, budget_ms = _search(monkeypatch, _ScriptedDevice(slow={winner}), 0.6)
    assert budget_ms == 0.6 and ratio > ratio0
    chosen = _params(probes, ratio)
    assert chosen < winner
    runs = [p for p in probes if p["ratio"] == ratio]
    assert [p["confirm"] for p in runs] == [False, True] and all(p["p50_ms"] <= 0.6 for p in runs)
    refuted = [p for p in probes if p["confirm"] and p["p50_ms"] > 0.6]
    assert refuted and all(p["params"] == winner for p in refuted)
    top = probes[1]  # the most pruning, measured second
    assert ratio < top["ratio"] and chosen > top["params"]


def test_no_confirmation_is_a_one_line_error(monkeypatch):
    device = _ScriptedDevice()
    device.slow = _AllModels()
    with pytest.raises(CompressError, match=r"no pruning ratio met the 0\.6 ms budget on a second"):
        _search(monkeypatch, device, 0.6)


class _AllModels:
    def __contains__(self, _n):
        return True


def test_a_slow_spell_mid_search_is_measured_again(monkeypatch):
    """A device that is 3× slower on its 4th measurement (a spell): the probe measured
    then is far slower than a bigger model measured before it, so it is measured once more and
    the faster kept — the search ends where a steady device would have put it."""
    steady_ratio, _, _ = _search(monkeypatch, _ScriptedDevice(), 0.6)

    class Spell(_ScriptedDevice):
        calls = 0

        def __call__(self, model, budget, data_dir, log):
            Spell.calls += 1
            out = super().__call__(model, budget, data_dir, log)
            if Spell.calls == 4:
                out = {k: v * 3 if k != "runs" else v for k, v in out.items()}
            return out

    ratio, probes, _ = _search(monkeypatch, Spell(), 0.6)
    assert ratio == steady_ratio
    again = [p for p in probes if p["remeasured"]]
    assert len(again) == 1 and again[0]["p50_ms"] == again[0]["params"] / 1e6
