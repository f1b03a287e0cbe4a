"""Ray Serve deployments (the API gateway) and the ``linqra`` command line."""
