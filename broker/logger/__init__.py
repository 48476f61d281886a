"""The central logger: MQTT in (`service.py`), classification (`ingest.py`), configuration
(`config.py`), storage behind one interface (`store/`), exports (`export.py`), and the
`roomctl logger` / `roomctl log` commands (`cli.py`)."""
