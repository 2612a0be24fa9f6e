#ifndef WEIGHTSMITH_CLINEARALGEBRA_SHIM_H
#define WEIGHTSMITH_CLINEARALGEBRA_SHIM_H
#include <cblas.h>
#include <lapacke.h>
#endif
