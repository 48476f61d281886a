"""The central Mosquitto: clinic PKI (`pki.py`), its config and ACL from templates (`conf.py`,
`templates/`), a local broker process for development and tests (`run.py`), and the
`roomctl pki` / `roomctl broker` commands (`cli.py`)."""
