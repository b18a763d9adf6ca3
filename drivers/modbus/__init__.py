"""Modbus TCP, RTU and RTU-over-TCP field driver (see driver.py); settings in settings.py."""

from drivers.modbus.driver import ModbusDriver
from drivers.modbus.lines import LinePool

__all__ = ["LinePool", "ModbusDriver"]
