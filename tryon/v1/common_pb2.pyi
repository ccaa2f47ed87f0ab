from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GarmentCategory(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GARMENT_CATEGORY_UNSPECIFIED: _ClassVar[GarmentCategory]
    GARMENT_CATEGORY_UPPER_BODY: _ClassVar[GarmentCategory]
    GARMENT_CATEGORY_LOWER_BODY: _ClassVar[GarmentCategory]
    GARMENT_CATEGORY_DRESS: _ClassVar[GarmentCategory]
GARMENT_CATEGORY_UNSPECIFIED: GarmentCategory
GARMENT_CATEGORY_UPPER_BODY: GarmentCategory
GARMENT_CATEGORY_LOWER_BODY: GarmentCategory
GARMENT_CATEGORY_DRESS: GarmentCategory

class Image(_message.Message):
    __slots__ = ("data", "media_type", "width", "height")
    DATA_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    media_type: str
    width: int
    height: int
    def __init__(self, data: _Optional[bytes] = ..., media_type: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class ImagePatch(_message.Message):
    __slots__ = ("image", "x", "y")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    image: Image
    x: int
    y: int
    def __init__(self, image: _Optional[_Union[Image, _Mapping]] = ..., x: _Optional[int] = ..., y: _Optional[int] = ...) -> None: ...

class Keypoint(_message.Message):
    __slots__ = ("x", "y", "confidence")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    x: float
    y: float
    confidence: float
    def __init__(self, x: _Optional[float] = ..., y: _Optional[float] = ..., confidence: _Optional[float] = ...) -> None: ...

class BodyPose(_message.Message):
    __slots__ = ("keypoints",)
    KEYPOINTS_FIELD_NUMBER: _ClassVar[int]
    keypoints: _containers.RepeatedCompositeFieldContainer[Keypoint]
    def __init__(self, keypoints: _Optional[_Iterable[_Union[Keypoint, _Mapping]]] = ...) -> None: ...

class GenerationOptions(_message.Message):
    __slots__ = ("seed", "steps", "guidance_scale", "strength", "prompt", "negative_prompt")
    SEED_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    GUIDANCE_SCALE_FIELD_NUMBER: _ClassVar[int]
    STRENGTH_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    NEGATIVE_PROMPT_FIELD_NUMBER: _ClassVar[int]
    seed: int
    steps: int
    guidance_scale: float
    strength: float
    prompt: str
    negative_prompt: str
    def __init__(self, seed: _Optional[int] = ..., steps: _Optional[int] = ..., guidance_scale: _Optional[float] = ..., strength: _Optional[float] = ..., prompt: _Optional[str] = ..., negative_prompt: _Optional[str] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "source")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    name: str
    source: str
    def __init__(self, name: _Optional[str] = ..., source: _Optional[str] = ...) -> None: ...

class GetInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ServiceInfo(_message.Message):
    __slots__ = ("stage", "backend", "device", "models", "version")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    stage: str
    backend: str
    device: str
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    version: str
    def __init__(self, stage: _Optional[str] = ..., backend: _Optional[str] = ..., device: _Optional[str] = ..., models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ..., version: _Optional[str] = ...) -> None: ...
