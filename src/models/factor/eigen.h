// Eigen, configured for RecForge's threading rules: Eigen must never start its own
// OpenMP parallel regions (STYLE.md §7: thread counts are explicit, library code never
// reads ambient OpenMP settings), so every file of this group includes Eigen through
// this header. It is used only on small dense problems (k x k Cholesky, the SVD of a
// (k + oversampling)-column sketch, thin QR), always from one thread per call.
#pragma once

#ifndef EIGEN_DONT_PARALLELIZE
#define EIGEN_DONT_PARALLELIZE
#endif

#if __has_include(<Eigen/Dense>)
#include <Eigen/Dense>
#else
// Debian installs Eigen under /usr/include/eigen3 (found by CMake's Eigen3 package;
// until the build links Eigen3::Eigen, the system include path reaches it this way).
#include <eigen3/Eigen/Dense>
#endif
