"""Key backends behind one :class:`~wallet.keys.signer.Signer` interface: a PKCS#11 HSM
(``pkcs11``) and an encrypted Web3 Secret Storage keystore (``keystore``)."""
