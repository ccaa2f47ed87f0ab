from tryon.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WarpGarmentRequest(_message.Message):
    __slots__ = ("garment", "pose", "target_width", "target_height", "category", "wire_version")
    GARMENT_FIELD_NUMBER: _ClassVar[int]
    POSE_FIELD_NUMBER: _ClassVar[int]
    TARGET_WIDTH_FIELD_NUMBER: _ClassVar[int]
    TARGET_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    WIRE_VERSION_FIELD_NUMBER: _ClassVar[int]
    garment: _common_pb2.Image
    pose: _common_pb2.BodyPose
    target_width: int
    target_height: int
    category: _common_pb2.GarmentCategory
    wire_version: int
    def __init__(self, garment: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., pose: _Optional[_Union[_common_pb2.BodyPose, _Mapping]] = ..., target_width: _Optional[int] = ..., target_height: _Optional[int] = ..., category: _Optional[_Union[_common_pb2.GarmentCategory, str]] = ..., wire_version: _Optional[int] = ...) -> None: ...

class GarmentLandmark(_message.Message):
    __slots__ = ("name", "x", "y")
    NAME_FIELD_NUMBER: _ClassVar[int]
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    name: str
    x: float
    y: float
    def __init__(self, name: _Optional[str] = ..., x: _Optional[float] = ..., y: _Optional[float] = ...) -> None: ...

class WarpGarmentResponse(_message.Message):
    __slots__ = ("warped_garment", "landmarks", "warped_garment_patch")
    WARPED_GARMENT_FIELD_NUMBER: _ClassVar[int]
    LANDMARKS_FIELD_NUMBER: _ClassVar[int]
    WARPED_GARMENT_PATCH_FIELD_NUMBER: _ClassVar[int]
    warped_garment: _common_pb2.Image
    landmarks: _containers.RepeatedCompositeFieldContainer[GarmentLandmark]
    warped_garment_patch: _common_pb2.ImagePatch
    def __init__(self, warped_garment: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., landmarks: _Optional[_Iterable[_Union[GarmentLandmark, _Mapping]]] = ..., warped_garment_patch: _Optional[_Union[_common_pb2.ImagePatch, _Mapping]] = ...) -> None: ...
