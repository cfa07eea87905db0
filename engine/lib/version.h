/* version.h - the release, printed by --version; debian/changelog carries the same (a test checks). */
#ifndef MXGATE_VERSION_H
#define MXGATE_VERSION_H

#define MXGATE_VERSION "0.1.0"

#endif
