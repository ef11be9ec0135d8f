"""The README documents every setting the services read."""

from pathlib import Path

from shared.config import GatewaySettings, PresenceSettings, RouterSettings, describe

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_setting_is_in_the_readme() -> None:
    for cls in (GatewaySettings, RouterSettings, PresenceSettings):
        for variable, _, _ in describe(cls):
            assert f"`{variable}`" in README, variable
