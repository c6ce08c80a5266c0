/* version.h - the version of canaryd and canaryctl: one number for both
 * programs, which `canaryd --version`, `canaryctl version` and the admin
 * API's GET /api/v1/version report. */
#ifndef CANARYD_VERSION_H
#define CANARYD_VERSION_H

#define CANARYD_VERSION "0.1.0"

#endif
