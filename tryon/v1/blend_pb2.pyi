from tryon.v1 import common_pb2 as _common_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class BlendRequest(_message.Message):
    __slots__ = ("person", "generated", "clothing_mask", "face_mask", "generated_patch", "wire_version")
    PERSON_FIELD_NUMBER: _ClassVar[int]
    GENERATED_FIELD_NUMBER: _ClassVar[int]
    CLOTHING_MASK_FIELD_NUMBER: _ClassVar[int]
    FACE_MASK_FIELD_NUMBER: _ClassVar[int]
    GENERATED_PATCH_FIELD_NUMBER: _ClassVar[int]
    WIRE_VERSION_FIELD_NUMBER: _ClassVar[int]
    person: _common_pb2.Image
    generated: _common_pb2.Image
    clothing_mask: _common_pb2.Image
    face_mask: _common_pb2.Image
    generated_patch: _common_pb2.ImagePatch
    wire_version: int
    def __init__(self, person: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., generated: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., clothing_mask: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., face_mask: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., generated_patch: _Optional[_Union[_common_pb2.ImagePatch, _Mapping]] = ..., wire_version: _Optional[int] = ...) -> None: ...

class BlendResponse(_message.Message):
    __slots__ = ("image", "image_patch")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_PATCH_FIELD_NUMBER: _ClassVar[int]
    image: _common_pb2.Image
    image_patch: _common_pb2.ImagePatch
    def __init__(self, image: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., image_patch: _Optional[_Union[_common_pb2.ImagePatch, _Mapping]] = ...) -> None: ...
