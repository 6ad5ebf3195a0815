"""A card reader with a PIN pad, for SoftHSM2 tokens: a PKCS#11 module the test builds that
passes every call to SoftHSM2 but says CKF_PROTECTED_AUTHENTICATION_PATH and takes its
PIN from the "keypad" — a file where the test writes what the person types, a line per
C_Login. Like a real PIN-pad reader it refuses a PIN sent by the computer (so a test
proves the agent sends none), and an empty keypad is the person pressing Cancel
(CKR_FUNCTION_CANCELED). Everything else is SoftHSM2's own answer: wrong PINs count and
lock as on the token.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.softhsm_kit import MODULE

HEADERS = "/usr/include/p11-kit-1"  # libp11-kit-dev: the PKCS#11 header

# What each test module shares: SoftHSM2's own functions, some replaced by ``REPLACE``
# (C statements on ``ours``), with the functions defined in ``BODY``.
WRAPPER = r"""
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <p11-kit/pkcs11.h>

static CK_FUNCTION_LIST ours;
static CK_FUNCTION_LIST_PTR real;

BODY

CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list) {
    CK_C_GetFunctionList get;
    void *inner = dlopen(INNER, RTLD_NOW | RTLD_LOCAL);
    if (inner == NULL) return CKR_GENERAL_ERROR;
    get = (CK_C_GetFunctionList)dlsym(inner, "C_GetFunctionList");
    if (get == NULL || get(&real) != CKR_OK) return CKR_GENERAL_ERROR;
    ours = *real;
    ours.C_GetFunctionList = C_GetFunctionList;
    REPLACE
    *list = &ours;
    return CKR_OK;
}
"""

PIN_PAD = r"""static CK_RV pad_token_info(CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info) {
    CK_RV rv = real->C_GetTokenInfo(slot, info);
    if (rv == CKR_OK) info->flags |= CKF_PROTECTED_AUTHENTICATION_PATH;
    return rv;
}

/* The first line of the keypad file is what the person types; the rest stays queued. */
static CK_RV pad_login(CK_SESSION_HANDLE session, CK_USER_TYPE user,
                       CK_UTF8CHAR_PTR pin, CK_ULONG length) {
    char all[4096], typed[256];
    size_t n = 0, line;
    FILE *file;
    if (pin != NULL || length != 0) return CKR_ARGUMENTS_BAD;
    file = fopen(KEYPAD, "r");
    if (file != NULL) { n = fread(all, 1, sizeof all - 1, file); fclose(file); }
    all[n] = 0;
    if (n == 0) return CKR_FUNCTION_CANCELED;
    line = strcspn(all, "\n");
    if (line >= sizeof typed) return CKR_FUNCTION_CANCELED;
    memcpy(typed, all, line);
    file = fopen(KEYPAD, "w");
    if (file == NULL) return CKR_FUNCTION_FAILED;
    if (all[line] == '\n') fputs(all + line + 1, file);
    fclose(file);
    return real->C_Login(session, user, (CK_UTF8CHAR_PTR)typed, line);
}
"""


def build_wrapper(
    folder: Path, name: str, body: str, replace: str, defines: dict[str, Path]
) -> Path:
    """A PKCS#11 module over SoftHSM2 with some of its functions replaced: compiled
    here with the system's gcc against p11-kit's header; ``defines``: C string macros."""
    source, library = folder / f"{name}.c", folder / f"lib{name}-pkcs11.so"
    source.write_text(WRAPPER.replace("BODY", body).replace("REPLACE", replace))
    macros = [f'-D{k}="{v}"' for k, v in {**defines, "INNER": MODULE}.items()]
    subprocess.run(
        [
            "/usr/bin/gcc",
            "-shared",
            "-fPIC",
            "-O1",
            f"-I{HEADERS}",
            *macros,
            "-o",
            str(library),
            str(source),
            "-ldl",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return library


@dataclass
class PinPad:
    module: Path
    keypad: Path

    def type(self, *pins: str) -> None:
        """What the person will type on the pad, one entry per PIN request."""
        self.keypad.write_text("".join(f"{pin}\n" for pin in pins))

    @property
    def pending(self) -> list[str]:
        return self.keypad.read_text().splitlines() if self.keypad.exists() else []


def build_pin_pad(folder: Path) -> PinPad:
    keypad = folder / "keypad"
    keypad.write_text("")
    replace = "ours.C_GetTokenInfo = pad_token_info; ours.C_Login = pad_login;"
    return PinPad(build_wrapper(folder, "pinpad", PIN_PAD, replace, {"KEYPAD": keypad}), keypad)
