"""What a technician writes for a Modbus device (`devices[].settings`) and point (`endpoints[].address`).

Both are checked here, when the driver is built, so a typo in config.yaml stops start-up with a
message naming the device or endpoint and the field — not a silent "unavailable" at the brew day.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bevforge.config import Device, Endpoint
from bevforge.devices import SettingsRefused
from bevforge.domain import DataType

Table = Literal["holding", "input", "coil", "discrete"]
RegisterType = Literal["bool", "int16", "uint16", "int32", "uint32", "float32"]
# The four 32-bit layouts device manuals name by where bytes A (most significant) … D land on the wire.
ByteOrder = Literal["ABCD", "CDAB", "BADC", "DCBA"]
WORD_ORDER_LAYOUT: dict[str, ByteOrder] = {"big": "ABCD", "little": "CDAB"}
REGISTER_WIDTH = {"bool": 1, "int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2}
BIT_TABLES = ("coil", "discrete")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModbusDeviceSettings(_Strict):
    """One Modbus slave. Devices sharing a serial port (or an RTU-over-TCP gateway) share one line."""

    transport: Literal["tcp", "rtu", "rtu_over_tcp"] = "tcp"
    host: str | None = Field(default=None, description="tcp / rtu_over_tcp: IP or host name")
    port: int = Field(default=502, ge=1, le=65535, description="tcp / rtu_over_tcp: TCP port")
    serial_port: str | None = Field(default=None, description="rtu: e.g. /dev/ttyUSB0")
    baudrate: int = Field(default=9600, ge=300, le=921600)
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8
    device_id: int = Field(default=1, ge=0, le=247, description="Modbus unit / slave id")
    timeout_s: float = Field(default=0.5, gt=0, le=10, description="answer time of one read")
    write_timeout_s: float = Field(default=1.0, gt=0, le=10, description="answer time of one write")
    poll_interval_s: float | None = Field(default=None, gt=0, description="default: each endpoint's own")
    max_block: int = Field(default=32, ge=1, le=125, description="registers per read (some drives cap at 8-16)")
    max_gap: int = Field(default=4, ge=0, le=64, description="unused registers bridged rather than a new read")
    retries: int = Field(default=1, ge=0, le=5, description="extra attempts for a failed read (never writes)")
    offline_after: int = Field(default=3, ge=1, le=20, description="failed reads in a row → device offline")
    reprobe_s: float = Field(default=1.0, gt=0, description="first re-probe delay of an offline device")
    reprobe_max_s: float = Field(default=30.0, gt=0, description="re-probe backoff ceiling")
    busy_backoff_s: float = Field(default=0.05, gt=0, le=5, description="first wait after a busy (05/06) answer")

    @model_validator(mode="after")
    def _where(self) -> ModbusDeviceSettings:
        if self.transport == "rtu" and not self.serial_port:
            raise ValueError("transport rtu needs serial_port")
        if self.transport != "rtu" and not self.host:
            raise ValueError(f"transport {self.transport} needs host")
        return self

    @property
    def line_key(self) -> tuple[Any, ...]:
        """Devices with equal keys share one client and take turns (an RS-485 line or a gateway).

        Plain Modbus TCP devices each get their own connection, so one dead drive never delays
        another; behind an RTU-over-TCP gateway or on a serial port there is one wire to share.
        """
        if self.transport == "rtu":
            return ("rtu", self.serial_port)
        if self.transport == "rtu_over_tcp":
            return ("rtu_over_tcp", self.host, self.port)
        return ("tcp", self.host, self.port, self.device_id)


class PointAddress(_Strict):
    """Where one endpoint lives in a device: table, address, type, scaling."""

    table: Table = "holding"
    address: Annotated[int, Field(ge=0, le=65535)]
    type: RegisterType | None = Field(default=None, description="default: bool on coils/discretes, else uint16")
    byte_order: ByteOrder | None = Field(
        default=None, description="32-bit values: ABCD (default, big-endian), CDAB (word swap), BADC (byte "
        "swap), DCBA (both) — as the device manual names it")
    word_order: Literal["big", "little"] | None = Field(
        default=None, description="older spelling of byte_order: big = ABCD, little = CDAB")
    scale: float = Field(default=1.0, description="engineering value = raw × scale + offset")
    offset: float = 0.0
    bit: int | None = Field(default=None, ge=0, le=15, description="read one bit of a register as a bool")
    on_value: int | None = Field(default=None, ge=0, le=65535, description="bool over a register: raw for ON")
    off_value: int | None = Field(default=None, ge=0, le=65535, description="bool over a register: raw for OFF")

    @model_validator(mode="after")
    def _consistent(self) -> PointAddress:
        if self.scale == 0:
            raise ValueError("scale must not be 0")
        if self.table in BIT_TABLES:
            if self.type not in (None, "bool") or self.bit is not None:
                raise ValueError(f"a {self.table} is a single bit: no type or bit")
        elif self.bit is not None and self.register_type not in ("uint16", "int16", "bool"):
            raise ValueError("bit applies to a 16-bit register")
        if (self.on_value is None) != (self.off_value is None):
            raise ValueError("on_value and off_value go together")
        if self.byte_order is not None and self.word_order is not None:
            raise ValueError("give byte_order or word_order, not both (word_order big = ABCD, little = CDAB)")
        if self.byte_order not in (None, "ABCD") and REGISTER_WIDTH[self.register_type] != 2:
            raise ValueError(f"byte_order {self.byte_order} applies to 32-bit types (int32, uint32, float32)")
        return self

    @property
    def layout(self) -> ByteOrder:
        """The point's 32-bit layout, whichever way the config spelt it (ABCD when it did not)."""
        if self.byte_order is not None:
            return self.byte_order
        return WORD_ORDER_LAYOUT[self.word_order or "big"]

    @property
    def register_type(self) -> RegisterType:
        if self.type is not None:
            return self.type
        return "bool" if self.table in BIT_TABLES else "uint16"

    @property
    def width(self) -> int:
        """Registers (or bits) this point occupies."""
        if self.table in BIT_TABLES:
            return 1
        return REGISTER_WIDTH[self.register_type]


def _first_error(exc: ValidationError) -> tuple[str, str]:
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"])
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        message = "unknown key"
    return field, message


def device_settings(device: Device) -> ModbusDeviceSettings:
    try:
        return ModbusDeviceSettings.model_validate(device.settings)
    except ValidationError as exc:
        field, message = _first_error(exc)
        raise SettingsRefused(device, f"settings.{field}" if field else "settings", message) from None


def point_address(endpoint: Endpoint) -> PointAddress:
    try:
        address = PointAddress.model_validate(endpoint.address)
    except ValidationError as exc:
        field, message = _first_error(exc)
        raise SettingsRefused(endpoint, f"address.{field}" if field else "address", message) from None
    is_bool = endpoint.data_type is DataType.BOOL
    bitwise = address.table in BIT_TABLES or address.bit is not None or address.on_value is not None
    if is_bool and not bitwise and address.register_type != "bool":
        raise SettingsRefused(endpoint, "address", "a bool endpoint needs a coil, discrete, bit "
                              "or on_value/off_value")
    if not is_bool and (address.table in BIT_TABLES or address.bit is not None or address.on_value is not None):
        raise SettingsRefused(endpoint, "address", "a numeric endpoint cannot read a single bit")
    if endpoint.writable:
        if address.table in ("input", "discrete"):
            raise SettingsRefused(endpoint, "address.table", f"{address.table} is read-only")
        if address.bit is not None:
            raise SettingsRefused(endpoint, "address.bit", "a bit inside a word is read-only here "
                                  "(write the whole word with on_value/off_value)")
    return address
