"""Many nodes, proven on one machine: two torchrun agents as two nodes (c10d rendezvous on 127.0.0.1,
one process each) train over WebDataset shards exactly as one node with two processes does."""
import subprocess
import sys

from data_prep.__main__ import main as data_prep_main
from ports import free_port
from test_train import assert_same_training_state, subprocess_env
from tiny_training import tiny_args



def shards_args(shards, tmp_path, run_name):
    args = tiny_args(shards, tmp_path, run_name, dataset="shards", max_steps=3, val_samples=2)
    return ["-m", "ifrvp_core.train", *args]


def test_two_nodes_train_like_one_node_with_two_processes(tiny_data, tmp_path):
    shards = tmp_path / "shards"
    for split in ("train", "test"):  # one sample per shard: enough shards for 2 ranks
        assert data_prep_main(["pack", "--dataset", "synthetic", "--data_root", str(tiny_data), "--output", str(shards),
                               "--split", split, "--shard_size", "1KiB"]) == 0
    port = free_port()
    node = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1", "--rdzv_backend=c10d",
            "--rdzv_id=two_nodes", f"--rdzv_endpoint=127.0.0.1:{port}"]
    agents = [subprocess.Popen(node + shards_args(shards, tmp_path, "two_nodes"), env=subprocess_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [agent.communicate(timeout=600)[0] for agent in agents]
    for agent, output in zip(agents, outputs):
        assert agent.returncode == 0, output[-3000:]
    assert sum("IFRVP_SUMMARY" in output for output in outputs) == 1  # one node holds rank 0, the only writer
    one_node = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                               *shards_args(shards, tmp_path, "one_node")], env=subprocess_env(), capture_output=True, text=True,
                              timeout=600)
    assert one_node.returncode == 0, one_node.stderr[-3000:]
    # rank r reads the same shards whether its peer is on another node or in the same one: equal bits
    assert_same_training_state(tmp_path / "two_nodes" / "latest.pt", tmp_path / "one_node" / "latest.pt")
