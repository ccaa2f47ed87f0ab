from tryon.v1 import common_pb2 as _common_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EstimatePoseRequest(_message.Message):
    __slots__ = ("person", "wire_version")
    PERSON_FIELD_NUMBER: _ClassVar[int]
    WIRE_VERSION_FIELD_NUMBER: _ClassVar[int]
    person: _common_pb2.Image
    wire_version: int
    def __init__(self, person: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., wire_version: _Optional[int] = ...) -> None: ...

class EstimatePoseResponse(_message.Message):
    __slots__ = ("pose", "pose_image")
    POSE_FIELD_NUMBER: _ClassVar[int]
    POSE_IMAGE_FIELD_NUMBER: _ClassVar[int]
    pose: _common_pb2.BodyPose
    pose_image: _common_pb2.Image
    def __init__(self, pose: _Optional[_Union[_common_pb2.BodyPose, _Mapping]] = ..., pose_image: _Optional[_Union[_common_pb2.Image, _Mapping]] = ...) -> None: ...
