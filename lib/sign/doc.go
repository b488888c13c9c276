// Package sign makes and checks pkgsrc signed binary packages, the format
// pkg_admin gpg-sign-package / x509-sign-package write and pkg_add checks
// (spec pkg-summary-and-signing.md §3).
//
// A signed package is a BSD ar archive (lib/ar's Writer, byte for byte what
// libarchive's ar_bsd writer produces) of three members, all carrying the
// mtime, uid, gid and st_mode of the unsigned package:
//
//	+PKG_HASH             the hash file (HashFile): pkgname, block size
//	                      65536, file size, one SHA-512 per block
//	+PKG_SIGNATURE        PKCS#7 detached signature of +PKG_HASH (X509Signer)
//	  or +PKG_GPG_SIGNATURE  armoured OpenPGP detached signature (GPGSigner)
//	<PKGNAME>.tmp<suffix> the unsigned package, unchanged
//
// pkgsrc's package.mk hands pkg_admin a temporary file named
// <PKGNAME>.tmp<PKG_SUFX> and pkg_admin stores its basename, so that is the
// inner name SignPackage writes (PKGNAME from +CONTENTS' @name, suffix from
// the package file name). pkg_add does not look at this name.
//
// Packages whose size is an exact multiple of 65536 bytes are refused
// (ErrBlockMultiple): pkg_install's signer never terminates on them and
// its verifier reads their last block as empty.
//
// VerifyPackage predicts pkg_add's verdict (Result.PkgAdd, Problems) by
// applying pkg_install's own rules, including its block lengths, and adds
// Notes about bytes no signature covers (ar headers, padding, the inner
// member's name, the armour or PEM/DER form of the signature) that differ
// from what pkg_admin writes, so that a single changed byte anywhere in a
// package makes verification fail. Consistent edits of several unsigned
// bytes (the same new mtime in all three headers) cannot be detected by
// anyone.
//
// X.509 signer certificates must pass pkg_install's checks (CheckSignerCert):
// exactly one certificate, not a CA (check_ca), extended key usage exactly
// codeSigning among the purposes OpenSSL knows, key matching the
// certificate. OpenPGP signatures are binary-document signatures with
// SHA-512, as `gpg --detach-sign --armor` makes them.
//
// SignFiles and SignStore are the re-runnable signing step: a package
// already validly signed by the same key is skipped, an unsigned one is
// signed, one signed by another key is re-signed, and a signed package
// whose inner package no longer matches its +PKG_HASH is left alone and
// reported (re-signing it would bless damaged content). Every new file is
// written beside the old one, synced, verified, and then renamed into place
// (stores: Put, which is atomic), so an interrupted run leaves each package
// either as it was or validly signed. Signing keeps what pkgrun's age check
// considers up to date: the new file keeps the old one's modification time
// where the target can set it, and elsewhere (S3) packages are replaced in
// the order of their times, after their @blddep dependencies (signAll).
package sign
