from tryon.v1 import common_pb2 as _common_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SegmentRequest(_message.Message):
    __slots__ = ("person", "category", "wire_version")
    PERSON_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    WIRE_VERSION_FIELD_NUMBER: _ClassVar[int]
    person: _common_pb2.Image
    category: _common_pb2.GarmentCategory
    wire_version: int
    def __init__(self, person: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., category: _Optional[_Union[_common_pb2.GarmentCategory, str]] = ..., wire_version: _Optional[int] = ...) -> None: ...

class SegmentResponse(_message.Message):
    __slots__ = ("label_map", "clothing_mask", "face_mask", "person_mask")
    LABEL_MAP_FIELD_NUMBER: _ClassVar[int]
    CLOTHING_MASK_FIELD_NUMBER: _ClassVar[int]
    FACE_MASK_FIELD_NUMBER: _ClassVar[int]
    PERSON_MASK_FIELD_NUMBER: _ClassVar[int]
    label_map: _common_pb2.Image
    clothing_mask: _common_pb2.Image
    face_mask: _common_pb2.Image
    person_mask: _common_pb2.Image
    def __init__(self, label_map: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., clothing_mask: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., face_mask: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., person_mask: _Optional[_Union[_common_pb2.Image, _Mapping]] = ...) -> None: ...
