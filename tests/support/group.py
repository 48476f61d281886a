"""A group of clinics on loopback: a central Mosquitto (its own PKI, the central ACL) and site
clinics whose brokers are bridged to it, all from the configs `roomctl broker config` writes
(`--central`, `--bridge-to`)."""

from __future__ import annotations

from pathlib import Path

from broker.logger.config import LoggerConfig
from broker.mosquitto.bridge import BridgeSettings, write_bridged_config, write_central_config
from broker.mosquitto.conf import BrokerSettings, current_user
from broker.mosquitto.pki import Identity, Pki
from broker.mosquitto.run import Mosquitto, free_port
from contract.mqtt import BrokerEndpoint
from tests.support.clinic import Clinic

CENTRAL = "central"


class ClinicGroup:
    """`central` (a broker) and `sites` (a `Clinic` each, bridged to it). `start()`, `stop()`."""

    def __init__(
        self,
        root: Path,
        sites: tuple[str, ...] = ("s1", "s2"),
        rooms: tuple[str, ...] = ("101", "102"),
    ):
        self.root = root
        self.pki = Pki.init(root / "central-pki", CENTRAL)
        for site in sites:
            self.pki.issue("bridge", site)
        self.pki.issue("logger")
        self.pki.issue("staff", "central")
        self.pki.issue("notifier", "main")  # the centre's notifier (page reports, receipts)
        self.port = free_port()
        state = root / "central"
        state.mkdir(parents=True, exist_ok=True)
        self.settings = BrokerSettings(
            site=CENTRAL,
            pki_dir=self.pki.root,
            tls_port=self.port,
            bind="127.0.0.1",
            state_dir=state,
            log_file=state / "mosquitto.log",
            run_as=current_user(),
            autosave_interval=1,
        )
        conf, self.acl = write_central_config(self.settings, root / "central.conf")
        self.central = Mosquitto(state, port=self.port, config_text=conf.read_text())
        self.sites: dict[str, Clinic] = {}
        for site in sites:
            clinic = Clinic(root / site, rooms=rooms, site=site)
            cert, key = self.pki.client_paths(Identity("bridge", site))
            bridge = BridgeSettings(site, "127.0.0.1", self.port, self.pki.ca_cert, cert, key)
            clinic.conf, clinic.acl = write_bridged_config(
                clinic.settings, bridge, root / site / "mosquitto.conf"
            )
            clinic.broker = Mosquitto(
                clinic.broker.state_dir, port=clinic.tls_port, config_text=clinic.conf.read_text()
            )
            self.sites[site] = clinic

    def endpoint(self, cn: str) -> BrokerEndpoint:
        ident = Identity.from_cn(cn)
        assert ident is not None, cn
        cert, key = self.pki.client_paths(ident)
        return BrokerEndpoint.from_url(
            f"mqtts://127.0.0.1:{self.port}", ca=self.pki.ca_cert, cert=cert, key=key
        )

    def logger_config(self, db: Path | str, site: str, **over: object) -> LoggerConfig:
        """The central logger of `site` (certificate `logger` of the central PKI)."""
        ep = self.endpoint("logger")
        data: dict[str, object] = {
            "broker": f"mqtts://127.0.0.1:{self.port}",
            "ca": ep.ca,
            "cert": ep.cert,
            "key": ep.key,
            "db": db,
            "site": site,
        }
        data.update(over)
        return LoggerConfig.model_validate(data)

    def start(self) -> ClinicGroup:
        self.central.start()
        for clinic in self.sites.values():
            clinic.start()
        return self

    def stop(self) -> None:
        for clinic in self.sites.values():
            clinic.stop()
        self.central.stop()

    def __enter__(self) -> ClinicGroup:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
