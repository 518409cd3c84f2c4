"""On-the-fly learning: calls where the model is unsure, resumes after kill -9, skips failed references."""

import io
import itertools
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from _frames import emt_frames
from ase.calculators.emt import EMT
from ase.cluster import Icosahedron
from ase.io import read, write
from clusterforce.kinds.gap import TwoBody
from clusterforce.kinds.gap.model import GAPModel
from clusterforce.workflows import learn
from clusterforce.workflows.learn import Learner, LearnSettings, init_temperatures, summary
from threadpoolctl import threadpool_limits


@pytest.fixture(autouse=True)
def one_openmp_thread():
    # These runs are tiny (13 atoms): with OpenMP and BLAS threads on a busy machine every prediction and
    # solve waits for idle threads (measured: 0.14 s against 1 ms per prediction, a run 5 s against 0.4 s).
    with threadpool_limits(1):
        yield


def fit(frames):
    return GAPModel(terms=[TwoBody(r_cut=5.0, n_sparse=15)], progress=False).fit(frames)


def settings(**kw):
    base = dict(temperatures=(300.0, 1500.0), steps_per_temperature=60, timestep=2.0, check_every=5, max_calls=4, quench_steps=30)
    return LearnSettings(**{**base, **kw})


def start():
    atoms = Icosahedron("Au", 2)
    atoms.center(vacuum=5.0)
    return atoms


def test_learning_calls_the_reference_and_improves_the_model(tmp_path):
    init = emt_frames(3, seed=0, rattle=0.3)
    learner = Learner(fit, init, lambda a: EMT(), [start()], settings(), tmp_path)
    model, state = learner.run()
    frames = read(tmp_path / "frames.extxyz", ":")
    report = summary(tmp_path)
    assert 1 <= len(frames) == report["calls"] <= 4
    assert all("learn_reason" in f.info for f in frames)
    assert model.training_["n_frames"] == len(init) + len(frames)
    # The learnt model predicts the labelled frames better than the initial one did before each call.
    after = [np.sqrt(np.mean((model.predict(f)["forces"] - f.get_forces()) ** 2)) for f in frames]
    assert np.mean(after) < np.mean(report["force_rmse_before_each_call"])


def test_resume_continues_without_duplicates(tmp_path):
    init = emt_frames(3, seed=0, rattle=0.3)
    Learner(fit, init, lambda a: EMT(), [start()], settings(max_calls=2), tmp_path).run()
    first = read(tmp_path / "frames.extxyz", ":")
    Learner(fit, init, lambda a: EMT(), [start()], settings(max_calls=4), tmp_path).run()
    frames = read(tmp_path / "frames.extxyz", ":")
    assert [f.info["learn_call"] for f in frames] == list(range(1, len(frames) + 1))
    assert all(np.array_equal(a.positions, b.positions) for a, b in zip(first, frames))


def test_failed_reference_is_skipped_with_a_log_line(tmp_path):
    class Failing(EMT):
        def calculate(self, *args, **kwargs):
            raise RuntimeError("SCF did not converge")

    init = emt_frames(3, seed=0, rattle=0.3)
    Learner(fit, init, lambda a: Failing(), [start()], settings(steps_per_temperature=20), tmp_path).run()
    events = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert any(e["event"] == "skip" and "SCF" in e["error"] for e in events)
    assert not (tmp_path / "frames.extxyz").exists()


def test_a_frame_cut_short_by_a_kill_is_dropped_on_resume(tmp_path, caplog):
    learner = Learner(fit, emt_frames(3, seed=0, rattle=0.3), lambda a: EMT(), [start()], settings(), tmp_path)
    write(learner.frames_path, emt_frames(2, seed=1))
    whole = learner.frames_path.read_text()
    third = io.StringIO()
    write(third, emt_frames(1, seed=2)[0], format="extxyz")
    learner.frames_path.write_text(whole + third.getvalue()[:-40])  # killed 40 characters before the end
    assert len(learner._collected()) == 2
    assert learner.frames_path.read_text() == whole and "cut short" in caplog.text


def test_default_ladder_is_the_temperatures_of_the_init_frames():
    frames = emt_frames(4, seed=0, rattle=0.3)
    assert init_temperatures(frames) == LearnSettings.temperatures  # no frame records one
    for atoms, t in zip(frames, (450.0, 150.0, 450.0, np.nan)):
        atoms.info["temperature_K"] = t
    assert init_temperatures(frames) == (150.0, 450.0)


def test_basin_hops_after_the_ladder_label_minima_and_resume(tmp_path):
    init = emt_frames(3, seed=0, rattle=0.3)
    # threshold 0: every check labels, so the reasons show the schedule: one MD check, the quench, three hops.
    kw = dict(temperatures=(300.0,), steps_per_temperature=5, threshold=0.0, hops=3)
    Learner(fit, init, lambda a: EMT(), [start()], settings(**kw, max_calls=3), tmp_path).run()
    assert json.loads((tmp_path / "state.json").read_text())["state"]["hop"] == 1
    model, state = Learner(fit, init, lambda a: EMT(), [start()], settings(**kw, max_calls=10), tmp_path).run()
    reasons = [f.info["learn_reason"] for f in read(tmp_path / "frames.extxyz", ":")]
    assert reasons[0].startswith("md 300 K") and reasons[1].startswith("quench")
    assert [r.split(":")[0] for r in reasons[2:]] == ["basin hop 1", "basin hop 2", "basin hop 3"]
    assert state.start == 1
    # Each hop's minimum is a relaxed structure of the model it was labelled with: small forces.
    hop = read(tmp_path / "frames.extxyz", "-1")
    assert np.abs(model.predict(hop)["forces"]).max() < 1.0


def test_budget_rule_spends_calls_a_high_threshold_would_not(tmp_path):
    init = emt_frames(3, seed=0, rattle=0.3)
    kw = dict(temperatures=(300.0, 600.0), relative_threshold=100.0, max_calls=6, hops=0)
    _, state = Learner(fit, init, lambda a: EMT(), [start()], settings(**kw, fill_budget=False), tmp_path / "off").run()
    assert not (tmp_path / "off" / "frames.extxyz").exists()
    assert len(state.seen) == 2 * (60 // 5 + 1)  # every MD check and quench was looked at
    Learner(fit, init, lambda a: EMT(), [start()], settings(**kw), tmp_path / "on").run()
    frames = read(tmp_path / "on" / "frames.extxyz", ":")
    assert 1 <= len(frames) <= 6
    assert all("budget rule" in f.info["learn_reason"] for f in frames)
    # Labelled structures are the most uncertain of those seen before them, never below the init median.
    floor = json.loads((tmp_path / "on" / "state.json").read_text())["state"]["floor"]
    assert all(float(re.search(r"max uncertainty (\S+) in the top", f.info["learn_reason"]).group(1)) > floor for f in frames)


def test_dml_adds_references_every_few_frames_and_at_the_end(tmp_path):
    from clusterforce.kinds.dml.model import DMLModel

    fits, batches = [], []

    class Tracked(DMLModel):
        def partial_fit(self, frames):
            batches.append(len(frames))
            return super().partial_fit(frames)

    def fit_dml(frames):
        fits.append(len(frames))
        return Tracked(r_cut=4.0, n_max=4, l_max=3, n_references_norm=60, n_references_direction=40, random_state=0, progress=False).fit(
            frames
        )

    init = emt_frames(4, seed=0, rattle=0.3)
    kw = dict(temperatures=(300.0,), threshold=0.0, hops=0, refit_every=2, max_calls=5)
    model, _ = Learner(fit_dml, init, lambda a: EMT(), [start()], settings(**kw), tmp_path).run()
    # Trained once on init; then references added after 2 and 4 new frames, the fifth at the end.
    assert fits == [4] and batches == [2, 2, 1]
    assert model.training_["n_frames"] == 9
    # Resuming adds the same batches in the same order: the model the uninterrupted run ended with.
    fits.clear()
    batches.clear()
    resumed, _ = Learner(fit_dml, init, lambda a: EMT(), [start()], settings(**kw), tmp_path).run()
    assert fits == [4] and batches == [2, 2, 1]
    probe = start()
    np.testing.assert_allclose(resumed.predict_forces(probe), model.predict_forces(probe), atol=1e-12)


def test_cli_bad_schedule_is_one_line_error(tmp_path, capsys):
    from clusterforce.cli import main

    init = tmp_path / "init.extxyz"
    write(init, emt_frames(2, seed=0, rattle=0.3))
    write(tmp_path / "start.xyz", start())
    code = main(["learn", "--kind", "gap", "--reference", "emt", "--init", str(init), "--start", str(tmp_path / "start.xyz"),
                 "--terms", "2b", "--hops", "-1", "--workdir", str(tmp_path / "w"), "-o", str(tmp_path / "l.cfm"), "--quiet"])  # fmt: skip
    assert code == 1
    assert "clusterforce learn: error: hops must be >= 0" in capsys.readouterr().err


def test_an_explorer_drives_the_md_while_the_learned_model_labels(tmp_path):
    init = emt_frames(3, seed=0, rattle=0.3)
    explorer = fit(init)
    kw = dict(temperatures=(300.0,), steps_per_temperature=20, threshold=0.0, hops=2, max_calls=6)

    class Counting(GAPModel):
        calls = 0

        def predict(self, atoms, **kw):
            Counting.calls += 1
            return super().predict(atoms, **kw)

    explorer.__class__ = Counting
    Learner(fit, init, lambda a: EMT(), [start()], settings(**kw), tmp_path, explorer=explorer).run()
    reasons = [f.info["learn_reason"] for f in read(tmp_path / "frames.extxyz", ":")]
    # MD, quench and hops ran on the explorer's forces (many predictions), and hops happened with it.
    assert Counting.calls > 20
    assert any(r.startswith("basin hop") for r in reasons)


def test_a_broken_reference_frame_is_not_fitted_and_the_md_goes_back(tmp_path):
    class Exploding(EMT):
        def calculate(self, *args, **kwargs):
            super().calculate(*args, **kwargs)
            self.results["forces"] = self.results["forces"] * 1e3

    init = emt_frames(3, seed=0, rattle=0.3)
    kw = dict(temperatures=(300.0,), steps_per_temperature=30, threshold=0.0, hops=0)
    model, state = Learner(fit, init, lambda a: Exploding(), [start()], settings(**kw), tmp_path).run()
    events = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    skips = [e for e in events if e["event"] == "skip"]
    assert skips and all("above the cap" in e["error"] for e in skips)
    assert state.restarts == sum(e["event"] == "restart" for e in events) >= 1
    assert not (tmp_path / "frames.extxyz").exists()
    assert model.training_["n_frames"] == len(init)
    # Off: the same frames are fitted.
    Learner(fit, init, lambda a: Exploding(), [start()], settings(**kw, max_force_ratio=None), tmp_path / "off").run()
    assert len(read(tmp_path / "off" / "frames.extxyz", ":")) >= 1


def fit_altering(alter):
    """A ``fit`` whose GAP model passes every prediction through ``alter(out, atoms, uncertainty)``
    (uncertainty: whether it was asked for): a model misbehaving on cue."""

    class Altered(GAPModel):
        def predict(self, atoms, *, properties=None):
            out = super().predict(atoms, properties=properties)
            alter(out, atoms, "uncertainty" in (properties or ()))
            return out

    def fitted(frames):
        model = fit(frames)
        model.__class__ = Altered
        return model

    return fitted


def test_a_structure_outside_the_data_is_undone_not_labelled(tmp_path, caplog):
    checks = itertools.count(1)

    def flag(out, atoms, variance):  # atom 2 extrapolating at every third uncertainty check, as dml flags a too-short pair
        if variance:
            out["extrapolating"] = (np.arange(len(atoms)) == 2) & (next(checks) % 3 == 0)

    fit_flagging = fit_altering(flag)
    init = emt_frames(3, seed=0, rattle=0.3)
    kw = dict(temperatures=(300.0,), steps_per_temperature=30, threshold=1e9, fill_budget=False, hops=0)
    with caplog.at_level(logging.INFO, logger="clusterforce.workflows.learn"):
        _, state = Learner(fit_flagging, init, lambda a: EMT(), [start()], settings(**kw), tmp_path).run()
    assert state.restarts >= 2
    assert "atom 2 outside the training data (extrapolating); back to the last sound structure" in caplog.text
    assert not (tmp_path / "frames.extxyz").exists()


def test_a_non_finite_force_stops_the_md_at_its_step(tmp_path, caplog):
    calls = itertools.count(1)

    def break_atom_4(out, atoms, variance):  # its force turns NaN at the 12th prediction
        if next(calls) == 12:
            out["forces"][4] = np.nan

    fit_breaking = fit_altering(break_atom_4)
    init = emt_frames(3, seed=0, rattle=0.3)
    kw = dict(temperatures=(300.0,), steps_per_temperature=20, threshold=0.0, cooldown=0, hops=0, max_calls=10)
    with caplog.at_level(logging.INFO, logger="clusterforce.workflows.learn"):
        _, state = Learner(fit_breaking, init, lambda a: EMT(), [start()], settings(**kw), tmp_path).run()
    assert state.restarts == 1
    stops = [r.getMessage() for r in caplog.records if "non-finite" in r.getMessage()]
    assert len(stops) == 1 and re.fullmatch(r"md 300 K step \d+: non-finite force on atom 4; back to the last sound structure", stops[0])
    frames = read(tmp_path / "frames.extxyz", ":")
    assert frames and all(np.isfinite(f.positions).all() and np.isfinite(f.get_forces()).all() for f in frames)


def test_learn_uses_the_estimator_contract_only(tmp_path):
    """A model without partial_fit is fitted again after each batch; one without uncertainty is refused."""

    class RefitOnly:
        """Duck-typed estimator: the contract of docs/adding-a-kind.md, no partial_fit."""

        kind, implemented_properties, provides_uncertainty = "refit-only", ("energy", "forces"), True

        def __init__(self, frames):
            self.gap = fit(frames)
            self.elements = self.gap.elements

        def predict(self, atoms, **kw):  # uncertainty always, as the contract asks
            return self.gap.predict(atoms, properties=["uncertainty"])

    fits = []

    def fit_refit(frames):
        fits.append(len(frames))
        return RefitOnly(frames)

    init = emt_frames(3, seed=0, rattle=0.3)
    kw = dict(temperatures=(300.0,), threshold=0.0, hops=0, refit_every=2, max_calls=3)
    Learner(fit_refit, init, lambda a: EMT(), [start()], settings(**kw), tmp_path / "refit").run()
    assert fits == [3, 5, 6]  # init; after two frames; at the end

    def fit_without_uncertainty(frames):
        model = fit_refit(frames)
        model.provides_uncertainty = False
        return model

    learner = Learner(fit_without_uncertainty, init, lambda a: EMT(), [start()], settings(**kw), tmp_path / "none")
    with pytest.raises(ValueError, match="learn needs a model with a per-atom uncertainty; this refit-only model provides none"):
        learner.run()


def test_max_force_ratio_must_exceed_one():
    with pytest.raises(ValueError, match="max_force_ratio must be above 1"):
        settings(max_force_ratio=0.5).validate()


# ---------------------------------------------------------------------- resume after a kill at any instant
class Killed(BaseException):
    """The process died here (a BaseException: learn's ``except Exception`` around the reference does not catch it)."""


def fit_small(frames):
    return GAPModel(terms=[TwoBody(r_cut=5.0, n_sparse=10)], progress=False).fit(frames)


def tiny_run(workdir):
    """A learning run of about a second through every kind of write: MD checks, a quench, basin hops, the end."""
    kw = dict(temperatures=(300.0,), steps_per_temperature=10, threshold=0.0, cooldown=5, hops=2, max_calls=4, quench_steps=10)
    return Learner(fit_small, emt_frames(2, seed=0, rattle=0.3), lambda a: EMT(), [start()], settings(**kw), workdir)


def outcome(workdir, model=None):
    """What a run leaves, but the times of its events: frames file, events, final commit record
    (schedule, random generator, structure), summary, and the final model's forces."""
    events = [json.loads(line) for line in (workdir / "log.jsonl").read_text().splitlines()]
    record = json.loads((workdir / "state.json").read_text())
    return {
        "frames": (workdir / "frames.extxyz").read_text(),
        "events": [{k: v for k, v in e.items() if k != "time"} for e in events],
        "state": {k: record[k] for k in ("state", "rng", "atoms", "sound", "frames", "events")},
        "summary": json.loads((workdir / "summary.json").read_text()),
        "forces": None if model is None else model.predict(start())["forces"].tolist(),
    }


def kill_at(monkeypatch, moment: int, torn: bool, written: list[str] | None = None) -> None:
    """Make learn die at its ``moment``-th write (0: never): just after it (``torn`` False, the same
    instant as just before the next write), or halfway through it (half the text appended, or half the
    temporary file of a replacement written). The names of the files written go to ``written``."""
    count = iter(range(1, 10**6))

    def dying(write, write_half):
        def writer(path, text, durable):
            k = next(count)
            if written is not None:
                written.append(path.name)
            if k == moment and torn:
                write_half(path, text[: len(text) // 2])
                raise Killed
            write(path, text, durable=durable)
            if k == moment:
                raise Killed

        return writer

    def append_half(path, text):
        with path.open("a") as fh:
            fh.write(text)

    def replace_half(path, text):
        path.with_name(path.name + ".tmp").write_text(text)

    monkeypatch.setattr(learn, "_append", dying(learn._append, append_half))
    monkeypatch.setattr(learn, "_replace", dying(learn._replace, replace_half))


def test_a_kill_at_any_write_resumes_to_the_uninterrupted_run(tmp_path, monkeypatch):
    """Killed halfway through each write of learn (the first: before anything is on disk) and just
    after it, and again in the recovery of a kill after a commit record, the resumed run leaves
    exactly what the uninterrupted run leaves: no frame lost or made twice, calls = frames =
    summary, the same model."""
    writes = []
    with monkeypatch.context() as m:
        kill_at(m, 0, False, writes)
        model, _ = tiny_run(tmp_path / "whole").run()
    expected = outcome(tmp_path / "whole", model)
    assert expected["summary"]["calls"] == len(read(tmp_path / "whole" / "frames.extxyz", ":")) == 4
    reasons = [r.split(":")[0] for r in expected["summary"]["reasons"]]
    assert reasons == ["md 300 K step 5", "md 300 K step 10", "quench after 300 K", "basin hop 1"]
    assert {"state.json", "frames.extxyz", "log.jsonl", "summary.json"} <= set(writes)
    kills = 0
    for moment, written in enumerate(writes, start=1):
        for torn in (True, False):
            workdir = tmp_path / f"{moment}{'-torn' if torn else ''}"
            with monkeypatch.context() as m:
                kill_at(m, moment, torn)
                with pytest.raises(Killed):
                    tiny_run(workdir).run()
            kills += 1
            if written == "state.json" and not torn:
                with monkeypatch.context() as m:  # die again, halfway through the first append of the recovery
                    kill_at(m, 1, True)
                    with pytest.raises(Killed):
                        tiny_run(workdir).run()
                kills += 1
            model, _ = tiny_run(workdir).run()
            assert outcome(workdir, model) == expected, f"killed {'halfway through' if torn else 'after'} write {moment} ({written})"
    assert kills >= 20


def test_cli_learn_killed_twice_with_kill_9_ends_as_the_uninterrupted_run(tmp_path):
    """Real kill -9 of ``clusterforce learn`` (whenever the kill lands: the checks hold for any instant)."""
    init = tmp_path / "init.extxyz"
    write(init, emt_frames(2, seed=0, rattle=0.3))
    write(tmp_path / "start.xyz", start())

    def command(name):
        return [sys.executable, "-m", "clusterforce", "learn", "--kind", "gap", "--reference", "emt", "--init", str(init),
                "--start", str(tmp_path / "start.xyz"), "--temperatures", "300", "--steps-per-temperature", "40", "--timestep", "2",
                "--threshold", "0", "--hops", "2", "--max-calls", "4", "--terms", "2b", "--r-cut-2b", "5.0", "--n-sparse-2b", "10",
                "--workdir", str(tmp_path / name), "-o", str(tmp_path / f"{name}.cfm"), "--quiet"]  # fmt: skip

    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    assert subprocess.run(command("whole"), env=env).returncode == 0
    work = tmp_path / "killed"
    # Kill when the first commit record is there, then when the second frame is: wherever the kill lands.
    for reached in (
        lambda: (work / "state.json").exists(),
        lambda: (work / "frames.extxyz").exists() and len(summary(work)["reasons"]) >= 2,
    ):
        proc = subprocess.Popen(command("killed"), env=env, start_new_session=True)
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None and not reached():
            time.sleep(0.01)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert subprocess.run(command("killed"), env=env).returncode == 0
    assert outcome(work) == outcome(tmp_path / "whole")
    frames = read(work / "frames.extxyz", ":")
    assert [f.info["learn_call"] for f in frames] == list(range(1, len(frames) + 1)) and len(frames) == 4
    assert json.loads((work / "summary.json").read_text())["calls"] == len(frames)
    assert (work / "learning_curve.png").stat().st_size > 0
    learned = GAPModel.load(tmp_path / "killed.cfm")
    assert list(learned.maps_) == [0]  # mapped once, after the last update
    np.testing.assert_array_equal(learned.predict(start())["forces"], GAPModel.load(tmp_path / "whole.cfm").predict(start())["forces"])


def test_a_state_file_it_cannot_resume_is_refused_by_name(tmp_path):
    (tmp_path / "state.json").write_text(json.dumps({"start": 0, "temperature": 1, "step": 0}))  # as learn wrote before commit records
    learner = Learner(fit_small, emt_frames(2, seed=0, rattle=0.3), lambda a: EMT(), [start()], settings(), tmp_path)
    with pytest.raises(ValueError, match=r"state.json was written by an older clusterforce and cannot be resumed exactly; remove it"):
        learner.run()


def test_without_a_reference_it_proposes_structures_to_label_and_resumes(tmp_path):
    init = tmp_path / "init.extxyz"
    write(init, emt_frames(3, seed=0, rattle=0.3))
    write(tmp_path / "start.xyz", start())
    argv = ["learn", "--kind", "gap", "--reference", "none", "--propose", "3", "--init", str(init), "--start", str(tmp_path / "start.xyz"),
            "--temperatures", "300", "1500", "--steps-per-temperature", "60", "--timestep", "2", "--check-every", "5", "--hops", "2",
            "--terms", "2b", "--r-cut-2b", "5.0", "--n-sparse-2b", "15", "--workdir", str(tmp_path / "work"),
            "-o", str(tmp_path / "to_label.extxyz"), "--quiet"]  # fmt: skip
    from clusterforce.cli import main

    assert main(argv) == 0
    proposed = read(tmp_path / "to_label.extxyz", ":")
    assert len(proposed) == 3 and [f.info["learn_call"] for f in proposed] == [1, 2, 3]
    assert all(f.calc is None and "uncertainty" in f.info["learn_reason"] for f in proposed)  # no labels: nothing was computed
    report = summary(tmp_path / "work")
    assert report["proposed"] == 3 and report["calls"] == 0
    # A rerun of the finished run proposes the same structures again, no more.
    assert main(argv) == 0
    again = read(tmp_path / "to_label.extxyz", ":")
    assert len(again) == 3 and all(np.array_equal(a.positions, b.positions) for a, b in zip(proposed, again))


@pytest.mark.parametrize("flags", [["--reference", "none"], ["--reference", "emt", "--propose", "2"]])
def test_propose_and_reference_none_go_together(tmp_path, flags):
    from clusterforce.cli import main

    with pytest.raises(SystemExit, match="--propose N goes with --reference none"):
        main(["learn", *flags, "--init", "dataset:na", "--system", "na", "--n", "13", "-o", str(tmp_path / "x.cfm")])
