// Stand-in for Gloo header (see ../README.md): nothing from it is used.
#pragma once
