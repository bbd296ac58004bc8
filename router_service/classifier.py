"""The task classifier, in process (ONNX Runtime): a Triton round trip would spend the budget
that the policy call needs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray


class TaskClassifier:
    def __init__(self, model_path: Path, norm_stats_path: Path, tasks: list[str]) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(model_path), options, providers=["CPUExecutionProvider"]
        )
        stats = json.loads(norm_stats_path.read_text())
        self._mean = np.asarray(stats["mean"], dtype=np.float32)
        self._std = np.asarray(stats["std"], dtype=np.float32)
        self.tasks = tasks
        n_out = self._session.get_outputs()[0].shape[-1]
        if isinstance(n_out, int) and n_out != len(tasks):
            raise ValueError(
                f"task classifier {model_path} predicts {n_out} tasks, contract has {len(tasks)}"
            )

    def probabilities(self, state: NDArray[np.float32]) -> NDArray[np.float32]:
        obs_norm = ((state - self._mean) / self._std).reshape(1, -1).astype(np.float32)
        (probs,) = self._session.run(["task_probs"], {"obs_norm": obs_norm})
        return np.asarray(probs[0], dtype=np.float32)
