"""Data-parallel training: torchrun starts the trainer in two processes (Gloo on CPU, NCCL on GPUs)
that split the groups, average their gradients through DDP and stay in lockstep."""

import json
import os
import subprocess
import sys
import textwrap
import weakref
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from istar_gym.rl.config import parse_config
from istar_gym.rl.distributed import World, device_index, init_world, map_location_for, process_group_backend, restore_generator_state
from istar_gym.rl.trainer import train

REPO_ROOT = Path(__file__).resolve().parents[1]

# Three 6x6 levels, one solved by a single push, so 3-turn episodes of a weakly warm-started tiny
# model both succeed and fail: groups with mixed outcomes give the PRM DPO pairs to train on.
LEVELS = [
    "######\n#    #\n# @$.#\n#    #\n#    #\n######",
    "######\n#  . #\n#    #\n# $  #\n# @  #\n######",
    "######\n#.   #\n#    #\n#  $ #\n#   @#\n######",
]
FLAGS = [
    "--model",
    "tiny",
    "--env",
    "istar/Sokoban-v0",
    "--istar",
    "--groups",
    "2",
    "--group-size",
    "2",
    "--max-turns",
    "3",
    "--sft-episodes",
    "50",
    "--sft-clean-steps",
    "20",
    "--sft-noisy-steps",
    "5",
    "--eval-episodes",
    "4",
    "--torch-threads",
    "1",
    "--no-progress",
    "--no-tensorboard",
    "--env-kwargs",
    json.dumps({"levels": LEVELS}),
    "--eval-env-kwargs",
    "{}",
]

# Runs `python -m istar_gym.rl.trainer` in each process and records, around every update, a digest of that
# process's policy and PRM weights.
RECORDER = textwrap.dedent(
    """
    import hashlib, json, os, sys
    import istar_gym.rl.trainer as trainer

    def digest(model):
        return hashlib.sha256(b"".join(p.detach().cpu().numpy().tobytes() for p in model.parameters())).hexdigest()

    records, step = [], trainer.Trainer.iteration_step

    def recorded(self, *args, **kwargs):
        before = digest(self.policy)
        metrics = step(self, *args, **kwargs)
        records.append({"before": before, "policy": digest(self.policy), "prm": digest(self.prm.model) if self.prm else None})
        return metrics

    trainer.Trainer.iteration_step = recorded
    try:
        trainer.main(sys.argv[1:])
    finally:
        with open(f"{os.environ['DIGESTS']}-{os.environ['RANK']}.json", "w") as handle:
            json.dump(records, handle)
    """
)


def launch(tmp_path, out, *flags, processes=2, tag="run"):
    """torchrun the recorder; returns the finished process and each rank's digests."""
    script = tmp_path / "recorder.py"
    script.write_text(RECORDER)
    # Keep the caller's PYTHONPATH after the repository: packages may live there (gpu_check.sh's wheels).
    python_path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": python_path, "OMP_NUM_THREADS": "1", "DIGESTS": str(tmp_path / tag)}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        str(processes),
        str(script),
        *FLAGS,
        "--out",
        str(out),
        *flags,
    ]
    finished = subprocess.run(command, check=False, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    digests = [json.loads((tmp_path / f"{tag}-{rank}.json").read_text()) for rank in range(processes)]
    return finished, digests


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    """A 2-iteration iStar run in two processes, then resumed in place for a third iteration."""
    tmp = tmp_path_factory.mktemp("distributed")
    run = tmp / "run"
    finished, digests = launch(tmp, run, "--iterations", "2")
    assert finished.returncode == 0, finished.stderr[-4000:]
    stopped = {"log": _log(run), "checkpoint": torch.load(run / "checkpoint.pt", weights_only=False)}
    finished, resumed = launch(tmp, run, "--iterations", "3", "--resume", tag="resumed")
    assert finished.returncode == 0, finished.stderr[-4000:]
    return {"run": run, "digests": digests, "stopped": stopped, "resumed": resumed}


def test_every_process_holds_the_same_policy_and_prm_after_every_update(two_processes):
    first, second = two_processes["digests"]
    assert len(first) == len(second) == 2
    assert first == second


def test_training_changes_the_policy_and_the_prm(two_processes):
    digests = two_processes["digests"][0]
    assert digests[-1]["policy"] != digests[0]["before"]
    assert sum(record.get("prm_pairs") or 0 for record in two_processes["stopped"]["log"]) > 0  # mixed outcomes
    assert digests[-1]["prm"] != digests[0]["before"]  # the PRM starts as a copy of the policy


def test_process_zero_alone_writes_one_log_and_checkpoint(two_processes):
    log, state = two_processes["stopped"]["log"], two_processes["stopped"]["checkpoint"]
    assert [record["iteration"] for record in log] == [0, 1, 2]  # evaluation at 0, then one line per iteration
    assert "eval_success" in log[0] and "eval_success" in log[-1]
    assert state["iteration"] == 2 and state["world_size"] == 2
    assert state["config"]["groups"] == 2  # the run's setting, not one process's share
    first, second = state["process_random_states"]
    assert first["numpy_rng"] != second["numpy_rng"]  # each process draws its own tasks
    assert not list(two_processes["run"].glob("*.tmp"))


def test_resumed_run_continues_from_the_checkpoint_in_lockstep(two_processes):
    first, second = two_processes["resumed"]
    assert len(first) == 1
    assert first[0]["before"] == two_processes["digests"][0][-1]["policy"]  # the checkpoint's weights, exactly
    assert first == second
    assert [record["iteration"] for record in _log(two_processes["run"])] == [0, 1, 2, 3]


def test_resume_refuses_another_number_of_processes(two_processes):
    with pytest.raises(ValueError, match="2 process"):
        train(parse_config([*FLAGS, "--out", str(two_processes["run"]), "--iterations", "4", "--resume"]))


@pytest.fixture(scope="module")
def started_by_the_trainer(tmp_path_factory):
    """A 2-iteration iStar run that ``--processes 2`` starts from this process, without torchrun."""
    run = tmp_path_factory.mktemp("processes") / "run"
    records = train(parse_config([*FLAGS, "--out", str(run), "--iterations", "2", "--processes", "2"]))
    return run, records


def test_processes_flag_starts_the_data_parallel_run_itself(started_by_the_trainer):
    run, records = started_by_the_trainer
    assert [record["iteration"] for record in records] == [record["iteration"] for record in _log(run)] == [0, 1, 2]
    assert records[-1]["env_steps_total"] == _log(run)[-1]["env_steps_total"] > 0
    state = torch.load(run / "checkpoint.pt", weights_only=False)
    assert state["world_size"] == 2 and state["config"]["processes"] == 2
    assert len(state["process_random_states"]) == 2
    assert (run / "policy" / "config.json").exists()


def test_a_processes_run_resumes_only_with_as_many(started_by_the_trainer):
    run, _ = started_by_the_trainer
    with pytest.raises(ValueError, match="--processes 2 or torchrun --nproc_per_node 2"):
        train(parse_config([*FLAGS, "--out", str(run), "--iterations", "3", "--resume"]))


def test_a_failing_process_stops_the_run_with_its_error(tmp_path):
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    missing = tmp_path / "no-such-model"
    flags = [*FLAGS, "--out", str(tmp_path / "run"), "--processes", "2"]
    flags[flags.index("tiny")] = str(missing)
    with pytest.raises(ChildFailedError, match="no-such-model"):
        train(parse_config(flags))


def test_every_process_takes_its_share_of_each_minibatch():
    config = parse_config([*FLAGS, "--groups", "4", "--minibatch-size", "512"])
    shard = World(rank=1, size=2).shard(config)
    assert (shard.groups, shard.minibatch_size) == (2, 256)
    assert World().shard(config) is config


def test_groups_that_do_not_split_over_the_processes_are_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ValueError, match="groups=3 does not split over 2 processes"):
        train(parse_config([*FLAGS, "--out", str(tmp_path / "run"), "--groups", "3"]))


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA devices (one process per GPU, NCCL)")
def test_two_gpus_train_in_lockstep(tmp_path):
    finished, (first, second) = launch(tmp_path, tmp_path / "run", "--iterations", "2", "--device", "cuda")
    assert finished.returncode == 0, finished.stderr[-4000:]
    assert first == second
    assert first[-1]["policy"] != first[0]["before"]


def _log(run) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


# --- Placement, backend choice, shutdown order and resume across devices (istar_gym.rl.distributed) ---


def _one_process_group(backend: str) -> None:
    """A real process group of one process, as a launcher with one process would give."""
    torch.distributed.init_process_group(backend, store=torch.distributed.HashStore(), rank=0, world_size=1)


@pytest.fixture
def joined_gloo_group():
    _one_process_group("gloo")
    yield
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def test_processes_beyond_the_gpus_share_them_round_robin():
    assert [device_index(rank, 2) for rank in range(4)] == [0, 1, 0, 1]
    assert [device_index(rank, 1) for rank in range(2)] == [0, 0]


def test_cuda_training_without_a_visible_gpu_is_refused_with_the_fix():
    with pytest.raises(RuntimeError, match="no CUDA device.*--device cpu"):
        device_index(0, 0)


def test_nccl_is_chosen_only_when_every_process_has_a_gpu_of_its_own():
    assert process_group_backend(cuda=True, requested=None, processes_per_node=2, device_count=2) == "nccl"
    assert process_group_backend(cuda=True, requested=None, processes_per_node=2, device_count=1) == "gloo"
    assert process_group_backend(cuda=False, requested=None, processes_per_node=2, device_count=0) == "gloo"


def test_requested_backend_overrides_the_choice():
    assert process_group_backend(cuda=True, requested="gloo", processes_per_node=1, device_count=1) == "gloo"


def test_nccl_for_two_processes_on_one_gpu_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="NCCL refuses two processes on one GPU; use 'gloo'"):
        process_group_backend(cuda=True, requested="nccl", processes_per_node=2, device_count=1)


def test_an_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="'mpi': expected one of gloo, nccl"):
        process_group_backend(cuda=False, requested="mpi", processes_per_node=1, device_count=0)


def test_without_a_launcher_an_existing_process_group_is_left_alone(joined_gloo_group, monkeypatch):
    # e.g. the group of one an in-process vLLM engine starts: the trainer must not train through it
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    world = init_world(SimpleNamespace(groups=2, device="cpu"))
    assert not world.communicates
    assert world.max(3) == 3 and world.all_gather(1) == [1]


def test_a_world_with_a_process_group_uses_it_for_every_call(joined_gloo_group):
    world = World(communicates=True)
    assert world.all_gather({"a": 1}) == [{"a": 1}]
    assert world.max(3) == 3
    assert world.broadcast("x") == "x"
    assert isinstance(world.data_parallel(torch.nn.Linear(2, 2)), torch.nn.parallel.DistributedDataParallel)
    with world.main_first():
        pass
    world.close()
    assert torch.distributed.is_initialized()  # created by the caller: not the world's to destroy


def test_close_shuts_registered_engines_down_before_the_process_group(joined_gloo_group):
    world = World(owns_process_group=True, communicates=True)
    seen = []
    world.on_close(lambda: seen.append(("first registered", torch.distributed.is_initialized())))
    world.on_close(lambda: seen.append(("last registered", torch.distributed.is_initialized())))
    world.close()
    assert seen == [("last registered", True), ("first registered", True)]
    assert not torch.distributed.is_initialized()


def test_close_frees_the_data_parallel_wrappers_before_the_process_group(joined_gloo_group, monkeypatch):
    # A DDP reducer freed after its Gloo group was destroyed blocked a finished run's exit.
    world = World(owns_process_group=True, communicates=True)
    wrapper = weakref.ref(world.data_parallel(torch.nn.Linear(2, 2)))
    destroy = torch.distributed.destroy_process_group
    alive_at_destroy = []

    def recording_destroy(*args, **kwargs):
        alive_at_destroy.append(wrapper() is not None)
        destroy(*args, **kwargs)

    monkeypatch.setattr(torch.distributed, "destroy_process_group", recording_destroy)
    world.close()
    assert alive_at_destroy == [False]
    assert not torch.distributed.is_initialized()


def test_checkpoint_tensors_load_onto_the_requested_device(tmp_path):
    torch.save({"weight": torch.ones(2)}, tmp_path / "state.pt")
    loaded = torch.load(tmp_path / "state.pt", map_location=map_location_for("cpu"))
    assert loaded["weight"].device == torch.device("cpu")


def test_generator_state_of_the_same_device_is_restored_exactly():
    source = torch.Generator().manual_seed(5)
    torch.rand(3, generator=source)
    target = torch.Generator().manual_seed(0)
    restore_generator_state(target, source.get_state())
    assert torch.equal(torch.rand(4, generator=target), torch.rand(4, generator=source))


def test_generator_state_from_another_device_seeds_a_deterministic_continuation():
    # A CUDA generator's state is its Philox seed and offset, 16 bytes; a CPU generator's is 5056 bytes.
    cuda_state = torch.tensor(list(range(16)), dtype=torch.uint8)
    first, second, other = torch.Generator(), torch.Generator(), torch.Generator()
    restore_generator_state(first, cuda_state)
    restore_generator_state(second, cuda_state.clone())
    restore_generator_state(other, torch.tensor(list(range(1, 17)), dtype=torch.uint8))
    draws = torch.rand(4, generator=first)
    assert torch.equal(draws, torch.rand(4, generator=second))
    assert not torch.equal(draws, torch.rand(4, generator=other))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; none is present")
def test_generator_state_moves_between_cpu_and_cuda():
    cuda_generator = torch.Generator(device="cuda").manual_seed(3)
    cpu_generator = torch.Generator().manual_seed(3)
    restore_generator_state(cpu_generator, cuda_generator.get_state())
    restore_generator_state(cuda_generator, torch.Generator().manual_seed(4).get_state())
    assert torch.rand(2, generator=cpu_generator).device.type == "cpu"
    assert torch.rand(2, generator=cuda_generator, device="cuda").device.type == "cuda"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; none is present")
def test_a_cuda_checkpoint_loads_on_cpu_and_a_bare_cuda_device_means_the_current_gpu(tmp_path):
    torch.save({"weight": torch.ones(2, device="cuda")}, tmp_path / "state.pt")
    assert torch.load(tmp_path / "state.pt", map_location=map_location_for("cpu"))["weight"].device.type == "cpu"
    assert map_location_for("cuda") == torch.device("cuda", torch.cuda.current_device())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; none is present")
def test_one_nccl_process_runs_every_collective_the_trainer_uses():
    torch.cuda.set_device(0)
    _one_process_group("nccl")
    try:
        world = World(cuda=True, backend="nccl", communicates=True)
        assert world.max(7) == 7
        assert world.all_gather(1) == [1] and world.broadcast("x") == "x"
        assert world.reduce_metrics({"env_steps": 2.0, "time_iteration": 1.0}) == {"env_steps": 2.0, "time_iteration": 1.0}
        model = world.data_parallel(torch.nn.Linear(4, 1).cuda())
        model(torch.ones(3, 4, device="cuda")).sum().backward()
        with world.main_first():
            pass
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; none is present")
def test_two_processes_share_one_gpu_over_gloo_in_lockstep(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0])
    finished, (first, second) = launch(tmp_path, tmp_path / "run", "--iterations", "2", "--device", "cuda")
    assert finished.returncode == 0, finished.stderr[-4000:]
    assert first == second
    assert first[-1]["policy"] != first[0]["before"]
