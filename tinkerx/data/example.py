"""``Example`` lives in ``tinkerx.example``, below the data sets and the rewards that both use it;
the data sets' modules import it from here too."""

from tinkerx.example import Example, record_fields

__all__ = ["Example", "record_fields"]
