"""Ray actors and tasks that run the core library on a cluster.

* :mod:`actors.runner` — the ``linqra-runner`` actor: runs executions, reaps orphans;
* :mod:`actors.executor` — the Ray step executor: CPU steps as Ray tasks, I/O steps
  as coroutines in the async :class:`actors.io_pool.IOStepWorker` pool.
"""
