"""The ceiling of the mandated stack, for `make bench`: Django + adrf + the
`ollama` client proxying the native chat request, and nothing else (no keys,
limits, usage records, error envelope or middleware). Served like the
gateway (uvicorn with uvloop and httptools); the gateway's throughput is
reported as a share of this one's, measured in the same run.

    DJANGO_SETTINGS_MODULE=bench.ceiling.settings OLLAMA_HOST=... \
        uvicorn --loop uvloop --http httptools bench.ceiling.asgi:application
"""
