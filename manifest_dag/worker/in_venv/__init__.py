"""Scripts run by a worker venv's own Python, where dbt is installed; never imported here, but for
``msgpack_paths`` (stdlib + msgpack), which both sides use so they rewrite a msgpack byte for byte alike."""
