from tryon.v1 import common_pb2 as _common_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class InpaintRequest(_message.Message):
    __slots__ = ("person", "clothing_mask", "warped_garment", "pose_image", "category", "options", "pose", "warped_garment_patch", "wire_version")
    PERSON_FIELD_NUMBER: _ClassVar[int]
    CLOTHING_MASK_FIELD_NUMBER: _ClassVar[int]
    WARPED_GARMENT_FIELD_NUMBER: _ClassVar[int]
    POSE_IMAGE_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    POSE_FIELD_NUMBER: _ClassVar[int]
    WARPED_GARMENT_PATCH_FIELD_NUMBER: _ClassVar[int]
    WIRE_VERSION_FIELD_NUMBER: _ClassVar[int]
    person: _common_pb2.Image
    clothing_mask: _common_pb2.Image
    warped_garment: _common_pb2.Image
    pose_image: _common_pb2.Image
    category: _common_pb2.GarmentCategory
    options: _common_pb2.GenerationOptions
    pose: _common_pb2.BodyPose
    warped_garment_patch: _common_pb2.ImagePatch
    wire_version: int
    def __init__(self, person: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., clothing_mask: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., warped_garment: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., pose_image: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., category: _Optional[_Union[_common_pb2.GarmentCategory, str]] = ..., options: _Optional[_Union[_common_pb2.GenerationOptions, _Mapping]] = ..., pose: _Optional[_Union[_common_pb2.BodyPose, _Mapping]] = ..., warped_garment_patch: _Optional[_Union[_common_pb2.ImagePatch, _Mapping]] = ..., wire_version: _Optional[int] = ...) -> None: ...

class InpaintResponse(_message.Message):
    __slots__ = ("image", "image_patch")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_PATCH_FIELD_NUMBER: _ClassVar[int]
    image: _common_pb2.Image
    image_patch: _common_pb2.ImagePatch
    def __init__(self, image: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., image_patch: _Optional[_Union[_common_pb2.ImagePatch, _Mapping]] = ...) -> None: ...

class InpaintProgress(_message.Message):
    __slots__ = ("done", "total")
    DONE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    done: int
    total: int
    def __init__(self, done: _Optional[int] = ..., total: _Optional[int] = ...) -> None: ...

class InpaintStreamResponse(_message.Message):
    __slots__ = ("progress", "result")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    progress: InpaintProgress
    result: InpaintResponse
    def __init__(self, progress: _Optional[_Union[InpaintProgress, _Mapping]] = ..., result: _Optional[_Union[InpaintResponse, _Mapping]] = ...) -> None: ...
