import ssl

from cryptography import x509

from mailwright.net.tls import self_signed, server_context


def test_self_signed_is_made_once_and_names_the_host(tmp_path):
    cert, key = self_signed(tmp_path, "mail.example.test")
    first = cert.read_bytes()
    assert self_signed(tmp_path, "mail.example.test") == (cert, key)
    assert cert.read_bytes() == first                      # not regenerated
    assert key.stat().st_mode & 0o077 == 0                 # private key not world-readable
    parsed = x509.load_pem_x509_certificate(first)
    names = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "mail.example.test" in names.get_values_for_type(x509.DNSName)


def test_server_context_requires_tls_1_2(tmp_path):
    ctx = server_context(*self_signed(tmp_path, "mail.example.test"))
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
