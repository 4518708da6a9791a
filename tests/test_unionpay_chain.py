"""Whether a 5.1.0 signing certificate is trusted: validity at the provider's clock, the chain
leaf -> middle -> root (SHA1-RSA links checked explicitly), the CN, and one parse per certificate.
Throwaway CFCA-like chains (paynotify_unionpay.testing) stand in for UnionPay's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from _unionpay import MER_ID, ORDER_ID, PINNED, account, chain, notify, parse, result, vector, vector_account
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from paynotify_unionpay import TEST_CN_ORG, UNIONPAY_CN_ORG, UnionPayProvider
from paynotify_unionpay._certs import CERT_CACHE_SIZE, _cached
from paynotify_unionpay.testing import generate_chain, make_notify

from paynotify import ConfigurationError, Notifier, VerificationError

DAY = timedelta(days=1)


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def test_the_throwaway_chain_is_cfca_like() -> None:
    c = chain()
    for certificate in (c.root, c.middle, c.leaf):
        assert isinstance(certificate.signature_hash_algorithm, hashes.SHA1)
    assert c.leaf.issuer == c.middle.subject
    assert c.middle.issuer == c.root.subject
    [cn] = c.leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    assert str(cn.value).split("@")[2] == UNIONPAY_CN_ORG
    assert "\r\n" in c.leaf_pem
    assert not c.leaf_pem.endswith("\n")
    assert result(notify()).key_id == c.cert_id


def test_sha256_chains_verify_too() -> None:
    c = generate_chain(cert_hash="sha256")
    acct = account(mer_id=MER_ID, **c.account_settings())
    assert result(make_notify(c, mer_id=MER_ID, order_id=ORDER_ID), acct).is_paid


def test_expired_leaf_is_refused() -> None:
    old = chain().with_leaf(not_before=now() - 400 * DAY, not_after=now() - DAY)
    with pytest.raises(VerificationError, match=rf"certId {old.cert_id}.* is expired"):
        parse(make_notify(old, mer_id=MER_ID, order_id=ORDER_ID))


def test_not_yet_valid_leaf_is_refused() -> None:
    early = chain().with_leaf(not_before=now() + DAY, not_after=now() + 400 * DAY)
    with pytest.raises(VerificationError, match="is not yet valid"):
        parse(make_notify(early, mer_id=MER_ID, order_id=ORDER_ID))


def test_the_clock_decides_not_the_machine_time() -> None:
    early = chain().with_leaf(not_before=now() + 10 * DAY, not_after=now() + 400 * DAY)
    body = make_notify(early, mer_id=MER_ID, order_id=ORDER_ID)
    later = UnionPayProvider(clock=lambda: (now() + 11 * DAY).timestamp())
    assert result(body, account(provider=later)).is_paid


def test_a_leaf_from_another_root_is_refused_naming_the_link() -> None:
    # Same names as chain()'s CA (the helpers name every chain alike): only the signature differs.
    other = generate_chain()
    assert other.leaf.issuer == chain().middle.subject
    with pytest.raises(
        VerificationError, match=r"chain link leaf -> middle failed.*signature does not verify with the key"
    ):
        parse(make_notify(other, mer_id=MER_ID, order_id=ORDER_ID))


def test_a_real_unionpay_leaf_is_refused_by_a_throwaway_chain() -> None:
    acct = account(provider=PINNED, mer_id="777290058167151")
    with pytest.raises(VerificationError, match=r"leaf -> middle failed.*its issuer is 'CN=CFCA TEST OCA1"):
        parse(vector("ys_open_callback_consume.form"), acct)


def test_a_self_signed_leaf_is_refused() -> None:
    # A leaf that is its own issuer: the form of every "bring your own certificate" forgery.
    c = chain()
    forged = make_notify(
        type(c)(c.root_key, c.root, c.middle_key, c.middle, c.root_key, c.root),
        mer_id=MER_ID,
        order_id=ORDER_ID,
    )
    with pytest.raises(VerificationError, match="leaf -> middle failed"):
        parse(forged)


def test_a_test_cn_is_refused_in_production_and_accepted_in_test() -> None:
    test_leaf = chain().with_leaf(cn_org=TEST_CN_ORG)
    body = make_notify(test_leaf, mer_id=MER_ID, order_id=ORDER_ID)
    with pytest.raises(
        VerificationError, match=r"CN check failed.*'00040000:SIGN', not '中国银联股份有限公司'"
    ):
        parse(body)
    assert result(body, account(environment="test")).is_paid


@pytest.mark.parametrize("environment", ["production", "test"])
def test_a_cn_naming_another_company_is_refused(environment: str) -> None:
    other = chain().with_leaf(cn_org="某某科技有限公司")
    with pytest.raises(VerificationError, match="CN check failed"):
        parse(make_notify(other, mer_id=MER_ID, order_id=ORDER_ID), account(environment=environment))


def test_a_middle_expired_at_the_clock_is_refused_naming_it() -> None:
    long_leaf = chain().with_leaf(not_after=now() + 3650 * DAY)
    middle_end = chain().middle.not_valid_after_utc
    late = UnionPayProvider(clock=lambda: (middle_end + DAY).timestamp())
    with pytest.raises(VerificationError, match="chain link middle failed: the production middle"):
        parse(make_notify(long_leaf, mer_id=MER_ID, order_id=ORDER_ID), account(provider=late))


def test_a_middle_from_another_root_is_refused_when_the_account_is_added() -> None:
    with pytest.raises(ConfigurationError, match=r"middle_cert: chain link middle -> root failed"):
        Notifier("memory://").add_account(
            "shop",
            "unionpay",
            mer_id=MER_ID,
            root_cert=generate_chain().root_pem,
            middle_cert=chain().middle_pem,
        )


def test_a_leaf_cannot_stand_in_for_the_middle() -> None:
    c = chain()
    with pytest.raises(ConfigurationError, match=r"middle certificate .* is not a CA certificate"):
        Notifier("memory://").add_account(
            "shop", "unionpay", mer_id=MER_ID, root_cert=c.root_pem, middle_cert=c.leaf_pem
        )


def test_bundled_production_chain_links_and_the_test_one_too() -> None:
    for environment in ("production", "test"):
        trust = account(environment=environment, root_cert=None, middle_cert=None).settings.trust_chain
        assert trust.middle.issuer == trust.root.subject_name
    assert (
        vector_account().settings.trust_chain.middle.subject
        == "CN=CFCA TEST OCA1,O=China Financial Certification Authority,C=CN"
    )


def test_each_distinct_certificate_is_parsed_once() -> None:
    _cached.cache_clear()
    acct = vector_account()
    body = vector("ys_open_callback_consume.form")
    for _ in range(5):
        assert result(body, acct).is_paid
    info = _cached.cache_info()
    assert (info.misses, info.hits, info.maxsize) == (1, 4, CERT_CACHE_SIZE)
    # The refusal of a damaged certificate is kept too: the same garbage is not parsed again.
    damaged = body.replace(b"MIIEYzCCA0ugAwIBAgIF", b"MIIEYzCCA0ugAwIBAgIG")
    for _ in range(3):
        with pytest.raises(VerificationError):
            parse(damaged, acct)
    assert _cached.cache_info().misses == 2


def test_a_flood_of_certificates_stays_bounded() -> None:
    _cached.cache_clear()
    for i in range(CERT_CACHE_SIZE + 10):
        pem = f"-----BEGIN CERTIFICATE-----\r\nAAAA{i}\r\n-----END CERTIFICATE-----".encode()
        body = make_notify(chain(), mer_id=MER_ID, order_id=ORDER_ID, signPubKeyCert=pem.decode())
        with pytest.raises(VerificationError, match=r"not a readable X\.509 certificate"):
            parse(body)
    assert _cached.cache_info().currsize == CERT_CACHE_SIZE


def test_sign_pub_key_cert_that_is_not_a_certificate_is_refused() -> None:
    for value, message in [
        (None, "without signPubKeyCert"),
        ("", "without signPubKeyCert"),
        ("hello", "not exactly one PEM certificate"),
        (chain().root_pem + chain().middle_pem, "not exactly one PEM certificate"),
    ]:
        with pytest.raises(VerificationError, match=message):
            parse(notify(signPubKeyCert=value))


def test_a_cached_chain_answer_is_only_for_the_leaf_it_was_made_for() -> None:
    # The leaf -> middle answer is kept per parsed leaf. An entry left under an id that another leaf
    # now has (a freed leaf's id reused) must not vouch for it: plant one and check it is ignored.
    acct = account()
    trust = acct.settings.trust_chain
    good = _cached(chain().leaf_pem.encode())
    other = generate_chain()
    stranger = _cached(other.leaf_pem.encode())
    assert not isinstance(good, str)
    assert not isinstance(stranger, str)
    trust._links[id(stranger)] = (good, None)  # "signed by the middle", for another certificate
    with pytest.raises(VerificationError, match="chain link leaf -> middle failed"):
        parse(make_notify(other, mer_id=MER_ID, order_id=ORDER_ID), acct)
