"""The reference Fachverfahren: a real, small target for adapter tests, the demo and benchmarks."""

from gateway.reference_fachverfahren.app import (
    WSDL_FILE,
    Case,
    CaseBook,
    FailRequest,
    ReferenceConfig,
    create_app,
)

__all__ = ["WSDL_FILE", "Case", "CaseBook", "FailRequest", "ReferenceConfig", "create_app"]
