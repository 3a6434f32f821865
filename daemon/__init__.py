"""Everything that touches the world: settings, queue, ledger, executors, service, CLI."""
