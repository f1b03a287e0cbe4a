"""Ray actors and tasks that run the core library on a cluster.

Naming rule: the core concept lives in ``linqra/X``; the actor hosting it on Ray in ``actors/X``.

* :mod:`actors.cluster` — ``start_cluster(settings)``: creates the singleton actors once;
* :mod:`actors.handles` — actor names, lookups, and ``RayLauncher`` (the launcher port on Ray);
* :mod:`actors.runner` — ``linqra-runner``: runs workflow executions (``linqra.workflows.runner``);
* :mod:`actors.executor` — where steps run: CPU steps as Ray tasks, I/O steps as coroutines in
  the :mod:`actors.io_pool` (``linqra-io-N``);
* :mod:`actors.agent` — ``linqra-agent-<id>``: one actor per busy agent (``linqra.agents``);
* :mod:`actors.scheduler` — ``linqra-scheduler``: cron schedules and event triggers
  (``linqra.scheduling``);
* :mod:`actors.supervisor` — ``linqra-supervisor``: activates agents, ingests documents
  (:mod:`actors.ingest`), finds lost work;
* :mod:`actors.async_steps` — ``linqra-async-N``: workers of queued async steps;
* :mod:`actors.events` — ``linqra-events``: the in-cluster event bus (``ray://``);
* :mod:`actors.alerts` — ``linqra-alerts``: evaluates the teams' alert rules (``linqra.alerts``);
* :mod:`actors.tracing` — ``linqra-spans``: exports the cluster's spans (``linqra.tracing``);
* :mod:`actors._context` — the one ``System`` of each worker process.
"""
