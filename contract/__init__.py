"""The message contract: the bottom layer of roomctl, imported by every other part.

- `contract.messages`: one pydantic model per payload (frozen, extra="forbid", bounded).
- `contract.topics`: the one table mapping each topic to its model, and every topic name.
- `contract.vitals`: the physiological limits, the monitor `Reading` and the one function
  that turns a reading into the fields of a vitals payload.
- `contract.timefmt`: the one way timestamps are written and read.
- `contract.sitetime`: the site's clock for people (local time with the zone named).
- `contract.mqtt`: broker URLs and the one paho client factory.

It imports nothing else from roomctl (a test walks the import graph to prove it).
"""
