"""Shared fixtures. Real parts: the shipped SmolLM2 and MiniLM models, a real llama-cpp-python
server on 127.0.0.1, real SQLite files. Each real model / server is loaded once per session.

Fixtures of each area live in their own `_fx_*.py` module, imported here.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
# Only iro-bb's own plugins: an unrelated package installed beside it cannot change what the tests
# run (subprocesses inherit it; test_registry switches to "all" for its outside plug-ins).
os.environ["IRO_BB_PLUGINS"] = "own"
# One torch thread per process: the tests run model servers, workers and graders as subprocesses
# beside the test process on 2 cores, and oversubscribed torch thread pools stall for seconds.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)

from _fx_api import *  # noqa: E402,F401,F403
from _fx_core import *  # noqa: E402,F401,F403
from _fx_dialects import *  # noqa: E402,F401,F403
from _fx_graders import *  # noqa: E402,F401,F403
from _fx_hf import *  # noqa: E402,F401,F403
from _fx_jobs import *  # noqa: E402,F401,F403
from _fx_llama import *  # noqa: E402,F401,F403
from _fx_pg import *  # noqa: E402,F401,F403
from _fx_ray import *  # noqa: E402,F401,F403
from _fx_runs import *  # noqa: E402,F401,F403
from _fx_search import *  # noqa: E402,F401,F403
from _fx_value import *  # noqa: E402,F401,F403
from _fx_vllm import *  # noqa: E402,F401,F403
