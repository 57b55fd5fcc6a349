"""The gateway's one JSON dialect, for everything that travels as protobuf behind it.

Protobuf's own JSON mapping (int64 as strings, `RULE_KIND_ACTION`, `create_time`, zero values
left out) is not what a web or app client wants. Every route speaks this instead:

- points and money minor units are JSON numbers (the services cap them far below 2^53);
- enums are short upper-case names: `ACTION`, not `RULE_KIND_ACTION`;
- times are RFC 3339 UTC strings in fields ending `_at` (`create_time` -> `created_at`);
- every field is present: zero values as such, an unset message as null.

`to_json` / `from_json` convert messages both ways; `model_for` gives the typed pydantic model
of a message (for the OpenAPI document and for validating request bodies), derived from the
protos so the contract keeps one source.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    StrictBool,
    StrictInt,
    create_model,
)

from gateway.errors import HttpError

_TIMESTAMP = "google.protobuf.Timestamp"

_ISO_8601 = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def _iso_only(value: object) -> object:
    """Pydantic would also read numbers (and numeric strings) as Unix times; we take only
    what the OpenAPI document promises: RFC 3339 date-times."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _ISO_8601.match(value):
        raise ValueError("must be an RFC 3339 date-time, e.g. 2026-11-25T08:00:00Z")
    return value


def _in_range(value: datetime) -> datetime:
    """Times the backends can carry (protobuf Timestamps), with a zone."""
    if value.tzinfo is None:
        raise ValueError("must carry a time zone offset, e.g. Z or +08:00")
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range") from None
    if not 1970 <= utc.year <= 9998:
        raise ValueError("must be between 1970 and 9998")
    return value


IsoDatetime = Annotated[datetime, BeforeValidator(_iso_only), AfterValidator(_in_range)]

_PAST = {"create": "created", "update": "updated", "expire": "expires", "mature": "matures"}
_FLOAT_TYPES = (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT)
_INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}


def enum_prefix(enum: Any) -> str:
    """`RuleKind` -> `RULE_KIND_` (every enum value in the protos carries its type's name)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", enum.name).upper() + "_"


def short_names(enum: Any) -> list[str]:
    prefix = enum_prefix(enum)
    return [v.name.removeprefix(prefix) for v in enum.values]


def short_name(enum: Any, number: int) -> str:
    """`short_name(rpb.Decision, 1)` -> `ALLOW` (`enum` is a generated enum type)."""
    return str(enum.Name(number)).removeprefix(enum_prefix(enum.DESCRIPTOR))


def enumerated(enum: Any) -> Any:
    """`Annotated[str, enumerated(mpb.ItemType)]`: a string whose OpenAPI schema lists the
    enum's short names."""
    return Field(json_schema_extra={"enum": list(short_names(enum.DESCRIPTOR))})


def _is_timestamp(field: Any) -> bool:
    return field.message_type is not None and field.message_type.full_name == _TIMESTAMP


def json_name(field: Any) -> str:
    """A field's name in the dialect: times end in `_at`."""
    if not _is_timestamp(field) or field.name.endswith("_at"):
        return str(field.name)
    stem = field.name.removesuffix("_time")
    head, _, last = stem.rpartition("_")
    return f"{head + '_' if head else ''}{_PAST.get(last, last)}_at"


def _is_map(field: Any) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def _map_value(field: Any) -> Any:
    return field.message_type.fields_by_name["value"]


# --- messages to JSON ------------------------------------------------------------------------


def to_json(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        name = json_name(field)
        if _is_map(field):
            entry = _map_value(field)
            out[name] = {str(k): _out(entry, v) for k, v in value.items()}
        elif field.is_repeated:
            out[name] = [_out(field, v) for v in value]
        elif field.message_type is not None and not message.HasField(field.name):
            out[name] = None
        else:
            out[name] = _out(field, value)
    return out


def _out(field: Any, value: Any) -> Any:
    if field.enum_type is not None:
        found = field.enum_type.values_by_number.get(value)
        return found.name.removeprefix(enum_prefix(field.enum_type)) if found else str(value)
    if _is_timestamp(field):
        moment: datetime = value.ToDatetime(tzinfo=UTC)
        return moment.isoformat().replace("+00:00", "Z")
    if field.message_type is not None:
        return to_json(value)
    if field.type == FieldDescriptor.TYPE_BYTES:
        return value.hex()
    return value


# --- JSON to messages ------------------------------------------------------------------------


def from_json(data: Mapping[str, Any], message: Message, path: str = "") -> Message:
    """Fill `message` from dialect JSON (already validated by its `model_for` model); a value
    the message cannot hold is a 400 naming the field."""
    fields = {json_name(f): f for f in message.DESCRIPTOR.fields}
    for name, value in data.items():
        field = fields.get(name)
        if field is None or value is None:
            continue
        where = f"{path}{name}"
        try:
            _assign(message, field, value, where)
        except (ValueError, TypeError, OverflowError):
            raise _bad(where, "holds a value this field cannot take") from None
    return message


def _assign(message: Message, field: Any, value: Any, where: str) -> None:
    target = getattr(message, field.name)
    if _is_map(field):
        entry = _map_value(field)
        for key, item in value.items():
            if entry.message_type is not None:
                _fill(entry, item, target[key], f"{where}.{key}")
            else:
                target[key] = _in(entry, item, f"{where}.{key}")
    elif field.is_repeated:
        for index, item in enumerate(value):
            if field.message_type is not None:
                _fill(field, item, target.add(), f"{where}[{index}]")
            else:
                target.append(_in(field, item, f"{where}[{index}]"))
    elif field.message_type is not None:
        _fill(field, value, target, where)
    else:
        setattr(message, field.name, _in(field, value, where))


def _fill(field: Any, value: Any, target: Message, where: str) -> None:
    if _is_timestamp(field):
        assert isinstance(target, Timestamp)
        moment = value if isinstance(value, datetime) else _parse_time(value, where)
        target.FromDatetime(moment.astimezone(UTC))
    else:
        if not isinstance(value, Mapping):
            raise _bad(where, "must be an object")
        from_json(value, target, f"{where}.")


def _in(field: Any, value: Any, where: str) -> Any:
    if field.enum_type is not None:
        full = enum_prefix(field.enum_type) + str(value)
        found = field.enum_type.values_by_name.get(full)
        if found is None:
            raise _bad(where, f"must be one of {', '.join(short_names(field.enum_type))}")
        return found.number
    if field.type == FieldDescriptor.TYPE_BYTES:
        try:
            return bytes.fromhex(str(value))
        except ValueError:
            raise _bad(where, "must be hex") from None
    return value


def _parse_time(value: Any, where: str) -> datetime:
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise _bad(where, "must be an RFC 3339 date-time") from None
    if moment.tzinfo is None:
        raise _bad(where, "needs a time zone (e.g. Z)")
    return moment


def _bad(field: str, description: str) -> HttpError:
    violation = {"field": field, "description": description}
    return HttpError(400, "INVALID_ARGUMENT", f"{field}: {description}", violations=[violation])


# --- typed models ----------------------------------------------------------------------------

_MODELS: dict[tuple[str, bool], type[BaseModel]] = {}


def _model_name(descriptor: Any, request: bool) -> str:
    """`loyalty.rules.v1.Rule` -> `RulesRule` (`RulesRuleIn` for a request body): named by
    service, so no two messages (nor the gateway's own models) share a name."""
    _, service, _, *rest = descriptor.full_name.split(".")
    name = service.capitalize() + "".join(rest)
    return f"{name}In" if request else name


def model_for(descriptor: Any, *, request: bool = False) -> type[BaseModel]:
    """The pydantic model of a message in the dialect. Request models make every field
    optional (protobuf's zero values); response models list every field as present."""
    key = (descriptor.full_name, request)
    found = _MODELS.get(key)
    if found is not None:
        return found
    fields: dict[str, Any] = {}
    for field in descriptor.fields:
        kind = _field_type(field, request)
        if request:
            fields[json_name(field)] = (kind | None, None)
        else:
            fields[json_name(field)] = (kind, Field())
    model: type[BaseModel] = create_model(
        _model_name(descriptor, request), __doc__=f"{descriptor.full_name}", **fields
    )
    _MODELS[key] = model
    return model


def _field_type(field: Any, request: bool) -> Any:
    if _is_map(field):
        return dict[str, _scalar_type(_map_value(field), request)]  # type: ignore[misc]
    one = _scalar_type(field, request)
    if field.is_repeated:
        return list[one]  # type: ignore[valid-type]
    if field.message_type is not None and not request:
        return one | None
    return one


def _scalar_type(field: Any, request: bool) -> Any:
    if field.enum_type is not None:
        return Literal[tuple(short_names(field.enum_type))]
    if _is_timestamp(field):
        return IsoDatetime if request else datetime
    if field.message_type is not None:
        return model_for(field.message_type, request=request)
    if field.type == FieldDescriptor.TYPE_BOOL:
        return StrictBool
    if field.type in _FLOAT_TYPES:
        return float
    if field.type in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES):
        return str
    low, high = _INT_RANGES.get(field.type, (-(2**63), 2**63 - 1))
    return Annotated[StrictInt, Field(ge=low, le=high)]
