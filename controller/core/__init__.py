"""The room core: pure, table-driven, no I/O (no gpiozero, serial, paho or sqlite).

- `room.RoomCore`: typed events in (`io_types`), typed actions out; combines the machines.
- `phases`, `call_lifecycle`, `alerts`, `lighting`: the table-driven state machines.
- `health`: the status code and the health payload.
- `emit.Emit`: what a machine reports, published by the core on `events`.
"""
