"""Model zoo and conversions between models, Flower records and flat vectors."""

from fedcurate.models.params import ParamLayout, load_record, model_to_record
from fedcurate.models.zoo import MODELS, blank_model, build_model

__all__ = ["MODELS", "ParamLayout", "blank_model", "build_model", "load_record", "model_to_record"]
