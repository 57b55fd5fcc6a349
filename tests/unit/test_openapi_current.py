from scripts import openapi


def test_the_committed_openapi_document_is_current() -> None:
    assert openapi.PATH.read_text() == openapi.document(), "run `make openapi` and commit it"
