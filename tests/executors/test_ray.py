"""The Ray executor on a real Ray cluster started on 127.0.0.1 (2 CPUs, 2 declared GPUs).

Studies run through the real CLI (the driver is a separate process, as a user runs it); the Ray
workers run the real synthetic and tiny backends. GPUs are declared, not present: Ray admits by
the declared count, which is what the GPU test checks.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import cli, synthetic_study, write_study
from tests.test_tuner import contents, small_study

from jfhpo.backends.base import SegmentTask
from jfhpo.executors.base import DoneEvent, FailedEvent, ObservationEvent, ProgressEvent
from jfhpo.fidelity import ModelRung
from jfhpo.records import SegmentStatus, Verdict
from jfhpo.spec import ModelSpec

pytest.importorskip("ray")

RAY = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def cluster() -> Iterator[dict[str, str]]:
    """A head node on 127.0.0.1 in its own process group, stopped (that group only) at the end.

    Yields the environment a driver needs to find it with ``address: auto``.
    """
    tmp = tempfile.mkdtemp(prefix="jfray", dir="/tmp")  # short: Ray's socket paths are limited
    port = _free_port()
    env = {**os.environ, "RAY_TMPDIR": tmp}
    log = open(os.path.join(tmp, "start.txt"), "w")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen(
        [RAY, "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port", str(port),
         "--num-cpus", "2", "--num-gpus", "2", "--resources", '{"spot": 1}',
         "--include-dashboard=false", "--temp-dir", tmp],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while "Ray runtime started" not in Path(tmp, "start.txt").read_text():
            assert proc.poll() is None, Path(tmp, "start.txt").read_text()
            assert time.monotonic() < deadline, "ray start took over 60 s"
            time.sleep(0.2)
        yield {**env, "JFHPO_TEST_RAY_ADDRESS": f"127.0.0.1:{port}"}
    finally:
        _stop_group(proc)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def _stop_group(proc: subprocess.Popen[Any]) -> None:
    """Stop a ``ray start --block`` we started, and every process of its group (raylet, GCS,
    workers), by its process-group id."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=2)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # whatever of this group is left
    except ProcessLookupError:
        pass


def _cli(env: dict[str, str], *args: str, timeout: float = 120,
         cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "jfhpo", *args], env=env, capture_output=True,
                          text=True, timeout=timeout, cwd=cwd)


def _timeline(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _with_resources(model: dict[str, Any], resources: dict[str, float]) -> dict[str, Any]:
    """A model entry asking for ``resources``: the rung's ``resources:`` key where the study
    file has one (the engine's contract), else ``build.resources`` (read the same way)."""
    if "resources" in ModelSpec.model_fields:
        return {**model, "resources": resources}
    return {**model, "build": {**model.get("build", {}), "resources": resources}}


def test_synthetic_study_runs_to_the_end_on_ray(cluster: dict[str, str], tmp_path: Path) -> None:
    data = synthetic_study(budget={"seconds": 200})
    data["executor"] = {"name": "ray", "address": "auto", "timeline": str(tmp_path / "tl.jsonl")}
    write_study(tmp_path / "s.yaml", data)
    # a relative study folder, as users write it: the Ray workers run in another folder
    r = _cli(cluster, "run", "s.yaml", "--out", "st", "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    best = json.loads(_cli(cluster, "best", str(tmp_path / "st"), "--json").stdout)
    assert best["model"] == "4m"
    db = sqlite3.connect(tmp_path / "st" / "study.sqlite")
    segs = db.execute("SELECT id, status FROM segments").fetchall()
    db.close()
    done = {int(SegmentStatus.COMPLETED), int(SegmentStatus.STOPPED)}
    assert segs and all(s[1] in done for s in segs)
    # the checkpoints the workers wrote landed in the study folder (their sizes were recorded
    # when they were committed; most are released by the end of the study)
    sizes = checkpoint_bytes(tmp_path / "st")
    assert sizes and all(n > 0 for n in sizes)
    # every segment ran as a Ray task, in a Ray worker process (not in the driver)
    tl = _timeline(tmp_path / "tl.jsonl")
    assert sorted(t["segment"] for t in tl) == sorted(s[0] for s in segs)
    assert all(t["result"] == "done" and t["node"] for t in tl)


def checkpoint_bytes(folder: Path) -> list[int]:
    db = sqlite3.connect(folder / "study.sqlite")
    rows = [int(r[0]) for r in db.execute("SELECT bytes FROM checkpoints")]
    db.close()
    return rows


def _ray_segment_pids() -> list[int]:
    """Processes whose title says they run a jfhpo segment for Ray (``ray::jfhpo_segment``)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmd = Path("/proc", entry, "cmdline").read_bytes()
            except OSError:
                continue
            if cmd.startswith(b"ray::jfhpo_segment"):
                pids.append(int(entry))
    return pids


def _running_segment(db_path: Path) -> tuple[int, int] | None:
    """(segment id, steps left) of a running segment with a few observations, if any."""
    try:
        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=0.2)
        try:
            done = db.execute("SELECT COUNT(*) FROM segments WHERE status IN (?, ?)",
                              (int(SegmentStatus.COMPLETED), int(SegmentStatus.STOPPED))).fetchone()[0]
            row = db.execute(
                "SELECT s.id, s.start_step, s.target_step, MAX(o.step) FROM segments s "
                "JOIN observations o ON o.segment_id = s.id WHERE s.status = ? GROUP BY s.id",
                (int(SegmentStatus.RUNNING),)).fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return None
    if done < 2 or row is None or row[3] < row[1] + 2:
        return None
    return int(row[0]), int(row[2] - row[3])


def test_lost_worker_is_retried_and_nothing_is_lost_or_doubled(cluster: dict[str, str],
                                                              tmp_path: Path) -> None:
    """Kill the Ray worker running a segment: the segment runs again from its checkpoint and the
    study equals an uninterrupted run of the local executor with the same seed. Then kill the
    driver itself: ``jfhpo resume`` finishes the study, again equal."""
    data = small_study(backend={"name": "synthetic", "options": {"sleep": 0.02}},
                       budget={"seconds": 40})
    ref = tmp_path / "ref"
    assert cli("run", str(write_study(tmp_path / "l.yaml", data)), "--out", str(ref),
               "--quiet").returncode == 0

    tl_path = tmp_path / "tl.jsonl"
    data["executor"] = {"name": "ray", "address": cluster["JFHPO_TEST_RAY_ADDRESS"],
                        "max_retries": 2, "timeline": str(tl_path)}
    f = write_study(tmp_path / "r.yaml", data)
    out = tmp_path / "ray"
    proc = subprocess.Popen([sys.executable, "-m", "jfhpo", "run", str(f), "--out", str(out),
                             "--quiet"], env=cluster, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    killed: tuple[int, int] | None = None
    deadline = time.monotonic() + 60
    while killed is None and proc.poll() is None and time.monotonic() < deadline:
        seg = _running_segment(out / "study.sqlite")
        pids = _ray_segment_pids()
        if seg is not None and seg[1] >= 8 and len(pids) == 1:  # 1 worker: 1 segment at a time
            os.kill(pids[0], signal.SIGKILL)
            killed = (seg[0], pids[0])
        time.sleep(0.01)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr[-3000:]
    assert killed is not None, "no segment was caught running"
    tl = _timeline(tl_path)
    lost = [t for t in tl if t["result"] == "lost"]
    assert [(t["segment"], t["attempt"]) for t in lost] == [(killed[0], 0)]
    retried = [t for t in tl if t["segment"] == killed[0] and t["result"] == "done"]
    assert len(retried) == 1 and retried[0]["attempt"] == 1 and retried[0]["pid"] != killed[1]
    got, want = contents(out), contents(ref)
    assert got == want
    # promotions resumed checkpoints that an earlier Ray task wrote
    assert any(seg[1] > 0 for seg in got["segments"])
    seen = set()
    for run, step, metrics in got["observations"]:
        for k in metrics:
            assert (run, step, k) not in seen
            seen.add((run, step, k))

    # a driver crash: SIGKILL the CLI half-way, then resume on the same cluster
    crash = tmp_path / "crash"
    data["executor"] = {"name": "ray", "address": cluster["JFHPO_TEST_RAY_ADDRESS"]}
    f = write_study(tmp_path / "c.yaml", data)
    proc = subprocess.Popen([sys.executable, "-m", "jfhpo", "run", str(f), "--out", str(crash),
                             "--quiet"], env=cluster, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    while _running_segment(crash / "study.sqlite") is None and proc.poll() is None:
        time.sleep(0.01)
    assert proc.poll() is None, "the study ended before it could be interrupted"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    r = _cli(cluster, "resume", str(crash), "--quiet")
    assert r.returncode == 0, r.stderr[-3000:]
    assert contents(crash) == want
    db = sqlite3.connect(crash / "study.sqlite")
    n_int = db.execute("SELECT COUNT(*) FROM segments WHERE status = ?",
                       (int(SegmentStatus.INTERRUPTED),)).fetchone()[0]
    db.close()
    assert n_int >= 1


def _peak(intervals: list[tuple[float, float, float]]) -> tuple[float, list[float]]:
    """The largest sum of amounts held at once, and every amount seen alone or together."""
    points = sorted([(s, a) for s, _, a in intervals] + [(e, -a) for _, e, a in intervals],
                    key=lambda p: (p[0], p[1]))  # at a tie, releases come before starts
    level, peak, levels = 0.0, 0.0, []
    for _, delta in points:
        level += delta
        peak = max(peak, level)
        levels.append(level)
    return peak, levels


def test_gpu_requests_are_admitted_within_the_declared_gpus(cluster: dict[str, str],
                                                            tmp_path: Path) -> None:
    """Rungs asking for 1 and 2 GPUs on a cluster declaring 2: never more than 2 GPUs' worth at
    once (from the start and end times the workers recorded), and 1-GPU proxies do share."""
    data = synthetic_study(
        backend={"name": "synthetic", "options": {"sleep": 0.01}},
        models=[_with_resources({"name": "small", "params": 5e4, "cost": 1.0},
                                {"gpus": 1, "cpus": 0.5}),
                _with_resources({"name": "big", "params": 4e6, "cost": 4.0},
                                {"gpus": 2, "cpus": 0.5})],
        steps={"min": 3, "max": 27, "eta": 3}, eval_every=3, workers=4,
        optimizer={"name": "hyperband", "options": {"model": "small"}},
        budget={"seconds": 50}, confirm={"top_k": 2, "fraction": 0.3})
    tl_path = tmp_path / "tl.jsonl"
    data["executor"] = {"name": "ray", "address": cluster["JFHPO_TEST_RAY_ADDRESS"],
                        "timeline": str(tl_path)}
    r = _cli(cluster, "run", str(write_study(tmp_path / "g.yaml", data)), "--out",
             str(tmp_path / "st"), "--quiet")
    assert r.returncode == 0, r.stderr[-3000:]
    tl = _timeline(tl_path)
    gpus = [(t["start"], t["end"], t["resources"]["GPU"]) for t in tl]
    assert {g for _, _, g in gpus} == {1.0, 2.0}
    peak, _ = _peak(gpus)
    assert peak <= 2.0 + 1e-9
    # the proxies did run two at a time (so the bound above was a real constraint)
    small = [(s, e, 1.0) for s, e, g in gpus if g == 1.0]
    assert _peak(small)[0] == 2.0


def test_a_worker_lost_every_time_fails_the_segment_after_max_retries(
        cluster: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The executor alone: a segment whose worker process dies at step 3 on every attempt is
    retried ``max_retries`` times, then reported failed with the cause."""
    import ray

    from jfhpo.executors.ray import RayExecutor

    monkeypatch.setenv("RAY_TMPDIR", cluster["RAY_TMPDIR"])
    ex = RayExecutor("synthetic", {"crash_at_step": 3}, 1, 1,
                     address=cluster["JFHPO_TEST_RAY_ADDRESS"], max_retries=1)
    try:
        task = SegmentTask(run_id=1, segment_id=7, config={"learning_rate": 1e-3},
                           model=ModelRung("m", 5e4), start_step=0, target_step=9, max_steps=9,
                           seed=0, checkpoint_dir=str(tmp_path / "ck"))
        assert ex.can_submit(task)
        ex.submit(task)
        events: list[Any] = []
        deadline = time.monotonic() + 60
        while not any(isinstance(e, FailedEvent) for e in events):
            assert time.monotonic() < deadline
            ev = ex.next_event(timeout=1.0)
            if ev is None:
                continue
            events.append(ev)
            if isinstance(ev, ObservationEvent):
                ex.verdict(ev.segment_id, Verdict.CONTINUE)
        steps = [e.step for e in events if isinstance(e, ObservationEvent)]
        assert steps == [1, 2]  # the retry replayed steps 1-2 without reporting them again
        retries = [e for e in events if isinstance(e, ProgressEvent)]
        assert len(retries) == 1 and "retry 1/1" in retries[0].message
        failed = events[-1]
        assert failed.segment_id == 7 and "lost 2 times" in failed.error
        assert [t["result"] for t in ex.timeline] == ["lost", "lost"]
        assert ex.free_slots() == 1 and not ex.in_use()
    finally:
        ex.shutdown()
    assert not ray.is_initialized()


def test_bad_executor_options_are_refused_naming_the_key(cluster: dict[str, str],
                                                        tmp_path: Path) -> None:
    """Through the CLI: exit code 2 and the key named; in-process: each bad value, and a rung
    asking for more GPUs than the cluster has (refused before anything runs)."""
    from jfhpo.executors.ray import RayExecutor
    from jfhpo.spec import StudyFileError

    data = small_study()
    data["executor"] = {"name": "ray", "adress": "auto"}
    r = _cli(cluster, "run", str(write_study(tmp_path / "b.yaml", data)), "--out",
             str(tmp_path / "b"))
    assert r.returncode == 2, r.stderr
    assert "executor: unknown key(s) ['adress']" in r.stderr
    assert not (tmp_path / "b").exists()  # refused before any folder was made
    from jfhpo.spec import parse_spec
    from jfhpo.study import Study
    from jfhpo.tuner import run_study

    data["executor"] = {"name": "dask"}
    study = Study.create(tmp_path / "d", parse_spec(data), "eval_accuracy")
    from jfhpo.executors.base import ExecutorError

    with pytest.raises(ExecutorError, match=r"executor\.name: unknown executor 'dask'"):
        run_study(study)
    study.close()
    for bad, key in (({"max_retries": -1}, "executor.max_retries"),
                     ({"address": ""}, "executor.address"),
                     ({"ray_trainer": "yes"}, "executor.ray_trainer")):
        with pytest.raises(StudyFileError, match=key):
            RayExecutor("synthetic", {}, 1, 1, **bad)
    ex = RayExecutor("synthetic", {}, 1, 1, address=cluster["JFHPO_TEST_RAY_ADDRESS"])
    try:
        with pytest.raises(StudyFileError, match=r"models\.big\.resources.*'GPU': 4\.0"):
            ex.prepare([ModelRung("small", 5e4, build={"resources": {"gpus": 1}}),
                        ModelRung("big", 4e6, build={"resources": {"gpus": 4}})], "")
    finally:
        ex.shutdown()


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("JFHPO_SLOW") != "1", reason="slow: set JFHPO_SLOW=1")
def test_tiny_study_runs_to_the_end_on_ray(cluster: dict[str, str], tmp_path: Path) -> None:
    """Real TRL GRPO segments in Ray workers (base models from the shared cache, prepared by a
    Ray task when missing), search on the 50k proxy, confirmation on the 200k target."""
    pytest.importorskip("trl")
    study = {
        "name": "tiny-ray", "seed": 0,
        "backend": {"name": "tiny", "options": {"task": "add2", "eval_problems": 50}},
        "models": [{"name": "50k", "params": 50720, "cost": 1.0, "build": {"size": "50k"}},
                   {"name": "200k", "params": 199744, "cost": 1.4, "build": {"size": "200k"}}],
        "steps": {"min": 2, "max": 4, "eta": 2},
        "space": {"learning_rate": {"type": "float", "low": 1e-5, "high": 3e-3, "log": True}},
        "optimizer": {"name": "hyperband", "options": {"model": "50k"}},
        "budget": {"seconds": 10},
        "workers": 2,
        "confirm": {"top_k": 1, "fraction": 0.1},
        "executor": {"name": "ray", "address": cluster["JFHPO_TEST_RAY_ADDRESS"]},
    }
    f = write_study(tmp_path / "tiny.yaml", study)
    out = tmp_path / "st"
    r = _cli(cluster, "run", str(f), "--out", str(out), timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    db = sqlite3.connect(out / "study.sqlite")
    segs = db.execute("SELECT status FROM segments").fetchall()
    names = set()
    for (m,) in db.execute("SELECT metrics FROM observations"):
        names |= set(json.loads(m))
    db.close()
    assert all(s[0] in (int(SegmentStatus.COMPLETED), int(SegmentStatus.STOPPED)) for s in segs)
    assert {"reward", "eval_accuracy"} <= names
    best = json.loads(_cli(cluster, "best", str(out), "--json").stdout)
    assert best["model"] == "200k" and best["steps"] == 4


def test_a_ray_based_trainer_is_launched_without_holding_its_gpus(
        cluster: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``ray_trainer: true``: the segment's task holds no GPU, so the trainer it launches can
    place its own 2-GPU placement group on the same cluster (no nesting, no deadlock), while the
    executor still admits only one 2-GPU segment at a time on a 2-GPU cluster."""
    import ray
    from ray.util.placement_group import placement_group, remove_placement_group

    from jfhpo.executors.ray import RayExecutor

    monkeypatch.setenv("RAY_TMPDIR", cluster["RAY_TMPDIR"])
    ex = RayExecutor("synthetic", {"sleep": 0.05}, 2, 1,
                     address=cluster["JFHPO_TEST_RAY_ADDRESS"], ray_trainer=True)
    try:
        rung = ModelRung("big", 4e6, build={"resources": {"gpus": 2}})

        def task(seg: int) -> SegmentTask:
            return SegmentTask(run_id=seg, segment_id=seg, config={}, model=rung, start_step=0,
                               target_step=40, max_steps=40, seed=0,
                               checkpoint_dir=str(tmp_path / f"ck{seg}"))

        ex.submit(task(1))
        assert ex.free_slots() == 1 and not ex.can_submit(task(2))  # its 2 GPUs are taken
        ev = ex.next_event(timeout=30)
        assert isinstance(ev, ObservationEvent)  # the launcher is running
        # what the launched trainer would do: a placement group of the 2 GPUs, at top level
        pg = placement_group([{"GPU": 2}])
        assert pg.wait(20), "the launcher held the GPUs its trainer needs"
        remove_placement_group(pg)
        ex.verdict(1, Verdict.STOP)
        while True:
            ev = ex.next_event(timeout=30)
            assert ev is not None
            if not isinstance(ev, ObservationEvent):
                break
            ex.verdict(1, Verdict.STOP)
        assert not isinstance(ev, FailedEvent), ev
        assert ex.can_submit(task(2))
        rec = ex.timeline[0]
        assert rec["resources"]["GPU"] == 2.0 and not rec["held"].get("GPU")
    finally:
        ex.shutdown()
    assert not ray.is_initialized()


def test_a_lost_node_gets_its_segment_retried_on_another_node(
        cluster: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Multi-node, simulated on this machine: a second Ray node (1 CPU, custom resource ``spot``)
    joins the head (which has ``spot`` too, held by a placeholder so the segment must start on
    the new node). That node is killed whole (raylet and workers) mid-segment; the segment runs
    again on the head and reports every step once. With two nodes the shared-path probe runs on
    each."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from jfhpo.executors.ray import RayExecutor

    monkeypatch.setenv("RAY_TMPDIR", cluster["RAY_TMPDIR"])
    node = subprocess.Popen(
        [RAY, "start", "--block", "--address", cluster["JFHPO_TEST_RAY_ADDRESS"],
         "--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--resources", '{"spot": 1}'],
        env=cluster, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    ex = None
    try:
        ex = RayExecutor("synthetic", {"sleep": 0.05}, 1, 1,
                         address=cluster["JFHPO_TEST_RAY_ADDRESS"], max_retries=1)
        head = ray.get_runtime_context().get_node_id()

        class Placeholder:
            def ping(self) -> bool:
                return True

        holder = ray.remote(Placeholder).options(  # type: ignore[attr-defined]
            num_cpus=0, resources={"spot": 1},
            scheduling_strategy=NodeAffinitySchedulingStrategy(head, soft=False)).remote()
        assert ray.get(holder.ping.remote(), timeout=60)
        deadline = time.monotonic() + 90
        while ray.cluster_resources().get("spot", 0) < 2:
            assert time.monotonic() < deadline, "the second node did not join"
            time.sleep(0.5)
        rung = ModelRung("m", 5e4, build={"resources": {"spot": 1}})
        ck = tmp_path / "ck" / "segment-1"
        ck.mkdir(parents=True)
        task = SegmentTask(run_id=1, segment_id=1, config={}, model=rung, start_step=0,
                           target_step=30, max_steps=30, seed=0, checkpoint_dir=str(ck))
        ex.submit(task)
        steps: list[int] = []
        events: list[Any] = []
        killed = False
        while not any(isinstance(e, (DoneEvent, FailedEvent)) for e in events):
            ev = ex.next_event(timeout=60)
            assert ev is not None, "no event for 60 s"
            events.append(ev)
            if isinstance(ev, ObservationEvent):
                steps.append(ev.step)
                ex.verdict(1, Verdict.CONTINUE)
                if ev.step == 5 and not killed:
                    (pid,) = _ray_segment_pids()
                    raylet = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
                    assert os.getpgid(raylet) == node.pid  # it runs on the second node
                    os.killpg(node.pid, signal.SIGKILL)  # the node: its raylet and the rest
                    os.kill(pid, signal.SIGKILL)  # and its worker (a process group of its own)
                    killed = True
                    ray.kill(holder)  # the head's spot is free for the retry
        assert isinstance(events[-1], DoneEvent) and events[-1].outcome.end_step == 30
        assert steps == list(range(1, 31))  # replayed steps 1-5 were not reported again
        assert any(isinstance(e, ProgressEvent) and "retry 1/1" in e.message for e in events)
        lost, done = ex.timeline
        assert lost["result"] == "lost" and done["result"] == "done" and done["attempt"] == 1
        assert done["node"] == head and done["held"].get("spot") == 1.0
    finally:
        if ex is not None:
            ex.shutdown()
        _stop_group(node)
